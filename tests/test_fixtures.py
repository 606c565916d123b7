"""The miniature qmail + syncdir pair (builder/fixtures), built on this host.

The trees are built with the real recipe's steps, exactly as the builder
runs them, but on the host with gcc and make.  Two things differ from a
sandbox build, both without touching the steps:
  - the qmail accounts need not exist here: auto_uids.c is written with the
    current uid/gid and make is told never to remake it (`make -o`);
  - conf-qmail points into a temporary folder, so `make setup check` installs
    and verifies a complete tree there without root.
"""

from __future__ import annotations

import gzip
import os
import pwd
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from builder.fixtures import write_sources, write_tarballs
from builder.toolchains import NATIVE_ENV

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "qmail-syncdir.yaml"
SYNCDIR_SYMBOLS = ("open", "link", "rename", "unlink")
PROGRAMS = (
    "qmail-queue", "qmail-start", "qmail-lspawn", "qmail-local", "qmail-send",
    "qmail-clean", "qmail-rspawn", "qmail-remote", "qmail-inject", "splogger",
)
# the programs that make queue or Maildir changes, hence pull in libsyncdir
QUEUE_PROGRAMS = ("qmail-queue", "qmail-send", "qmail-local", "qmail-clean")

needs_toolchain = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("cc", "make", "ar", "nm")),
    reason="needs cc, make, ar and nm on this host",
)


# --- helpers -----------------------------------------------------------------


def fake_ids(tree: Path) -> None:
    """auto_uids.c with this process's ids: every account maps to us."""
    uid, gid = os.getuid(), os.getgid()
    users = ("uida", "uidd", "uidl", "uido", "uidp", "uidq", "uidr", "uids")
    lines = [f"int auto_{name} = {uid};" for name in users]
    lines += [f"int auto_{name} = {gid};" for name in ("gidn", "gidq")]
    (tree / "auto_uids.c").write_text("\n".join(lines) + "\n")


def make_wrapper(folder: Path) -> Path:
    """A make that never remakes auto_uids.c (the accounts may not exist here)."""
    wrapper = folder / "make-fake-ids"
    wrapper.write_text('#!/bin/sh\nexec make -o auto_uids.c "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def target_steps(name: str) -> tuple[tuple[str, ...], str]:
    """The real recipe's steps and cflags for one target."""
    from builder.recipe.loader import load_recipe

    target = load_recipe(RECIPE).target(name)
    return target.steps, " ".join(target.cflags)


def run_steps(steps, env: dict[str, str]) -> None:
    for step in steps:
        proc = subprocess.run(["sh", "-eu", "-c", step], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"step failed:\n{step}\n--- output\n{proc.stdout}\n{proc.stderr}"


def step_env(sources: dict[str, Path], make: Path | str, prefix: Path, cflags: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SRC_QMAIL=str(sources["qmail"]),
        SRC_SYNCDIR=str(sources["syncdir"]),
        MAKE=str(make),
        JOBS="8",
        EXTRA_CFLAGS=cflags,
        EXTRA_LDFLAGS="-Wl,-z,relro -Wl,-z,now",  # as the recipe's build.ldflags
        PREFIX=str(prefix),
        **NATIVE_ENV,  # the compilers a native build gets
    )
    env.pop("MAKEFLAGS", None)
    return env


def dynamic_symbols(binary: Path) -> dict[str, str]:
    """name -> nm type letter, from the dynamic symbol table (works when stripped)."""
    out = subprocess.run(["nm", "-D", str(binary)], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            table[parts[-1].split("@")[0]] = parts[-2]
    return table


def build(tmp: Path, target: str = "debian-12", skip=lambda step: False) -> tuple[dict[str, Path], Path]:
    """Sources built and installed with the recipe's steps; returns (trees, prefix)."""
    sources = write_sources(tmp / "src")
    prefix = tmp / "qmail"
    conf = sources["qmail"] / "conf-qmail"
    conf.write_text(f"{prefix}\n" + conf.read_text().split("\n", 1)[1])
    fake_ids(sources["qmail"])
    steps, cflags = target_steps(target)
    run_steps([s for s in steps if not skip(s)], step_env(sources, make_wrapper(tmp), prefix, cflags))
    return sources, prefix


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not all(shutil.which(tool) for tool in ("cc", "make", "ar", "nm")):
        pytest.skip("needs cc, make, ar and nm on this host")
    return build(tmp_path_factory.mktemp("fixture-build"))


# --- the trees and tarballs ---------------------------------------------------


def test_write_sources_layout(tmp_path):
    trees = write_sources(tmp_path)
    assert trees == {"qmail": tmp_path / "qmail-1.03", "syncdir": tmp_path / "syncdir-1.0"}
    qmail, syncdir = trees["qmail"], trees["syncdir"]
    assert (syncdir / "Makefile").is_file() and (syncdir / "syncdir.c").is_file()
    assert "#include <syscall.h>\n" in (syncdir / "syncdir.c").read_text()
    for name in ("Makefile", "conf-cc", "conf-ld", "conf-qmail", "conf-split", "make-load.sh",
                 "make-compile.sh", "warn-auto.sh", "alloc.h", "spawn.c", "hier.c"):
        assert (qmail / name).is_file(), name
    assert not list(qmail.rglob("*.o")) and not list(qmail.rglob("__pycache__"))
    with pytest.raises(FileExistsError):
        write_sources(tmp_path)


def test_tree_has_every_line_the_recipe_edits(tmp_path):
    qmail = write_sources(tmp_path)["qmail"]
    load = (qmail / "make-load.sh").read_text().splitlines()
    assert len(load) <= 3
    assert load[1] == """echo exec "$LD" '-o "$main" "$main".o ${1+"$@"}'"""
    assert "extern int errno;" in (qmail / "error.h").read_text().splitlines()
    assert "extern int errno;" in (qmail / "cdb_seek.c").read_text().splitlines()
    assert "extern int h_errno;" in (qmail / "dns.c").read_text().splitlines()
    assert (qmail / "conf-cc").read_text().splitlines()[0].startswith("cc ")
    assert "-Werror" not in (qmail / "conf-cc").read_text()
    assert (qmail / "conf-ld").read_text().splitlines()[0] == "cc -s"
    assert (qmail / "conf-qmail").read_text().splitlines()[0] == "/var/qmail"


def test_tarballs_are_deterministic(tmp_path):
    first = write_tarballs(tmp_path / "a")
    second = write_tarballs(tmp_path / "b")
    assert first == {"qmail": tmp_path / "a" / "qmail-1.03.tar.gz", "syncdir": tmp_path / "a" / "syncdir-1.0.tar.gz"}
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes()
        raw = path.read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime
        top = {"qmail": "qmail-1.03", "syncdir": "syncdir-1.0"}[name]
        with tarfile.open(path) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0] == top and names == sorted(names)
        assert all(n == top or n.startswith(top + "/") for n in names)
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname for m in members)
        assert gzip.decompress(raw)  # a valid stream


def test_tarball_matches_sources(tmp_path):
    trees = write_sources(tmp_path / "src")
    balls = write_tarballs(tmp_path / "tar")
    with tarfile.open(balls["qmail"]) as tar:
        text = tar.extractfile("qmail-1.03/qmail-send.c").read()
        files = {m.name for m in tar.getmembers() if m.isfile()}
    assert text == (trees["qmail"] / "qmail-send.c").read_bytes()
    on_disk = {f"qmail-1.03/{p.relative_to(trees['qmail']).as_posix()}"
               for p in trees["qmail"].rglob("*") if p.is_file()}
    assert files == on_disk


# --- built with the recipe -----------------------------------------------------


@needs_toolchain
def test_recipe_relinks_every_program_with_syncdir(built):
    sources, _ = built
    qmail = sources["qmail"]
    assert "-L. -lsyncdir" in (qmail / "make-load.sh").read_text().splitlines()[1]
    assert "-lsyncdir" in (qmail / "load").read_text()
    assert (qmail / "spawn.c").read_text().startswith('#include "alloc.h"\n')
    assert "#include <errno.h>" in (qmail / "error.h").read_text()
    for program in PROGRAMS:
        assert (qmail / program).is_file(), program
    for program in QUEUE_PROGRAMS:
        symbols = dynamic_symbols(qmail / program)
        for name in SYNCDIR_SYMBOLS:
            assert symbols.get(name) == "T", f"{program}: {name} is {symbols.get(name)}"
        assert symbols.get("fsync") == "U" and symbols.get("syscall") == "U"
    archive = subprocess.run(["nm", str(sources["syncdir"] / "libsyncdir.a")], capture_output=True, text=True,
                             check=True).stdout
    for name in SYNCDIR_SYMBOLS:
        assert f" T {name}\n" in archive
    assert " U fsync\n" in archive and " U syscall\n" in archive


@needs_toolchain
def test_without_syncdir_the_calls_come_from_libc(tmp_path):
    # by each step's first line, its description: the relink and the install
    skipped = ("# relink every program against syncdir", "# install into")
    sources, _ = build(tmp_path, skip=lambda step: step.startswith(skipped))
    assert "-lsyncdir" not in (sources["qmail"] / "load").read_text()
    symbols = dynamic_symbols(sources["qmail"] / "qmail-queue")
    for name in ("open", "link", "unlink"):  # qmail-queue never renames
        assert symbols.get(name) == "U", f"{name} is {symbols.get(name)}"
    assert "rename" not in symbols and "syscall" not in symbols


@needs_toolchain
def test_gcc14_cflags_target_builds_too(tmp_path):
    from builder.recipe.loader import load_recipe

    names = [t.name for t in load_recipe(RECIPE).targets if t.cflags]
    if not names:
        pytest.skip("no target adds cflags")
    sources, prefix = build(tmp_path, target=names[0])
    assert (prefix / "bin" / "qmail-send").is_file()
    first = (sources["qmail"] / "conf-cc").read_text().splitlines()[0]
    assert first.endswith(" ".join(target_steps(names[0])[1].split()))


@needs_toolchain
def test_setup_installs_the_layout_and_check_verifies_it(built):
    sources, prefix = built
    modes = {
        "": 0o755, "bin": 0o755, "alias": 0o2755, "control": 0o755, "users": 0o755, "boot": 0o755,
        "boot/home": 0o755,
        "bin/qmail-queue": 0o4711, "bin/qmail-start": 0o700, "bin/qmail-lspawn": 0o700,
        "bin/qmail-local": 0o711, "bin/qmail-send": 0o711, "bin/qmail-clean": 0o711,
        "bin/qmail-rspawn": 0o711, "bin/qmail-remote": 0o711, "bin/qmail-inject": 0o755,
        "bin/splogger": 0o711,
        "queue": 0o750, "queue/mess": 0o750, "queue/mess/0": 0o750, "queue/mess/22": 0o750,
        "queue/todo": 0o750, "queue/intd": 0o700, "queue/pid": 0o700,
        "queue/info/22": 0o700, "queue/local/0": 0o700, "queue/remote/11": 0o700,
        "queue/bounce": 0o700, "queue/lock": 0o750, "queue/lock/sendmutex": 0o600,
        "queue/lock/tcpto": 0o644, "queue/lock/trigger": 0o622,
    }
    for rel, mode in modes.items():
        st = (prefix / rel).lstat()
        assert st.st_mode & 0o7777 == mode, f"{rel}: {oct(st.st_mode & 0o7777)}"
    assert not (prefix / "queue" / "mess" / "23").exists()
    assert (prefix / "queue" / "lock" / "trigger").is_fifo()
    assert str(prefix / "bin") in (prefix / "boot" / "home").read_text()

    instcheck = sources["qmail"] / "instcheck"
    assert subprocess.run([str(instcheck)], capture_output=True).returncode == 0
    (prefix / "bin" / "qmail-send").chmod(0o755)
    try:
        proc = subprocess.run([str(instcheck)], capture_output=True, text=True)
        assert proc.returncode != 0 and "qmail-send: mode is 0755, want 0711" in proc.stderr
    finally:
        (prefix / "bin" / "qmail-send").chmod(0o711)


@needs_toolchain
def test_build_fails_without_the_accounts(tmp_path):
    try:
        pwd.getpwnam("alias")
        pytest.skip("this host has an alias account")
    except KeyError:
        pass
    sources = write_sources(tmp_path)
    proc = subprocess.run(["make", "-j4", "auto_uids.c"], cwd=sources["qmail"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unable to find user alias" in proc.stderr
    assert not (sources["qmail"] / "auto_uids.c").exists()


# --- runtime -----------------------------------------------------------------


def inject(prefix: Path, *args: str, message: bytes = b"Subject: test\n\nbody\n") -> subprocess.CompletedProcess:
    return subprocess.run([str(prefix / "bin" / "qmail-inject"), *args], input=message, capture_output=True)


def queued(prefix: Path) -> list[int]:
    return sorted(int(p.name) for p in (prefix / "queue" / "todo").iterdir())


def run_send(prefix: Path, until, timeout: float = 15) -> str:
    """Run qmail-send until until() holds, then SIGTERM it; returns its log."""
    proc = subprocess.Popen([str(prefix / "bin" / "qmail-start"), "./Maildir/"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    return out.decode()


@needs_toolchain
def test_queue_commit_and_envelope(built):
    _, prefix = built
    before = set(queued(prefix))
    assert inject(prefix, "-f", "me@example.org", "nobody-here-1@example.org", "nobody-here-2").returncode == 0
    new = sorted(set(queued(prefix)) - before)
    assert len(new) == 1
    n = new[0]
    envelope = (prefix / "queue" / "todo" / str(n)).read_bytes()
    fields = envelope.split(b"\0")
    assert fields[-2:] == [b"", b""]
    assert [f[:1] for f in fields[:-2]] == [b"u", b"p", b"t", b"F", b"T", b"T"]
    assert fields[3:6] == [b"Fme@example.org", b"Tnobody-here-1@example.org", b"Tnobody-here-2"]
    message = (prefix / "queue" / "mess" / str(n % 23) / str(n)).read_bytes()
    assert message.startswith(b"Received: (qmail ") and message.endswith(b"Subject: test\n\nbody\n")
    assert not list((prefix / "queue" / "intd").iterdir()) and not list((prefix / "queue" / "pid").iterdir())

    # unknown users: logged and dropped, and the message leaves the queue completely
    log = run_send(prefix, lambda: not queued(prefix))
    assert not queued(prefix)
    assert f"new msg {n}" in log and f"end msg {n}" in log
    assert "failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/" in log and "delivery failed" in log
    assert "status: local 0/10 remote 0/20" in log and "status: exiting" in log
    for sub in ("mess", "local"):
        assert not (prefix / "queue" / sub / str(n % 23) / str(n)).exists()


@needs_toolchain
def test_qmail_queue_rejects_bad_envelopes(built):
    _, prefix = built
    before = queued(prefix)

    def mess():
        return sorted(p for p in (prefix / "queue" / "mess").rglob("*") if p.is_file())

    messages = mess()
    qq = str(prefix / "bin" / "qmail-queue")
    for envelope, code in ((b"Fa\0\0", 91), (b"Xa\0Tb\0\0", 91), (b"Fa\0Tb\0", 91),
                           (b"Fa\0T" + b"x" * 1200 + b"\0\0", 11)):
        r, w = os.pipe()
        os.write(w, envelope)
        os.close(w)
        proc = subprocess.run([qq], input=b"Subject: x\n\n", stdout=r, stderr=subprocess.PIPE)
        os.close(r)
        assert proc.returncode == code, envelope
    assert queued(prefix) == before and mess() == messages
    assert not list((prefix / "queue" / "intd").iterdir()) and not list((prefix / "queue" / "pid").iterdir())


@needs_toolchain
def test_finished_recipients_are_not_delivered_again(built):
    """Restart after a stop: recipients recorded in local/ are skipped."""
    _, prefix = built
    before = set(queued(prefix))
    assert inject(prefix, "nobody-here-3", "nobody-here-4").returncode == 0
    (n,) = set(queued(prefix)) - before
    record = prefix / "queue" / "local" / str(n % 23) / str(n)
    record.write_bytes(b"DD")  # as if qmail-send had finished both, then died
    log = run_send(prefix, lambda: not queued(prefix))
    assert "starting delivery" not in log and f"end msg {n}" in log
    assert not record.exists()


@needs_toolchain
def test_interrupted_removal_is_finished_at_startup(built):
    """Killed after todo/ went but before the rest: the next start removes the rest."""
    _, prefix = built
    before = set(queued(prefix))
    assert inject(prefix, "nobody-here-5").returncode == 0
    (n,) = set(queued(prefix)) - before
    record = prefix / "queue" / "local" / str(n % 23) / str(n)
    mess = prefix / "queue" / "mess" / str(n % 23) / str(n)
    record.write_bytes(b"F")
    (prefix / "queue" / "todo" / str(n)).unlink()
    log = run_send(prefix, lambda: not mess.exists(), timeout=5)
    assert not mess.exists() and not record.exists()
    assert f"removed the rest of msg {n}" in log and "starting delivery" not in log


@needs_toolchain
def test_qmail_local_delivers_once_per_id(built, tmp_path):
    sources, _ = built
    home = tmp_path / "home"
    for sub in ("tmp", "new", "cur"):
        (home / "Maildir" / sub).mkdir(parents=True)
    local = str(sources["qmail"] / "qmail-local")
    args = [local, "someone", str(home), "someone@example.org", "me@example.org", "./Maildir/", "1.M2P3Q4R0"]
    first = subprocess.run(args, input=b"Subject: once\n\nhi\n", capture_output=True)
    again = subprocess.run(args, input=b"Subject: once\n\nhi\n", capture_output=True)
    assert first.returncode == 0 and first.stdout == b"did_0+0+1/\n"
    assert again.returncode == 0 and b"already_delivered" in again.stdout
    delivered = list((home / "Maildir" / "new").iterdir())
    assert len(delivered) == 1 and delivered[0].name.startswith("1.M2P3Q4R0.")
    assert delivered[0].read_bytes().startswith(b"Return-Path: <me@example.org>\n"
                                                b"Delivered-To: someone@example.org\nSubject: once")
    assert not list((home / "Maildir" / "tmp").iterdir())
    # no Maildir, or an mbox delivery: temporary failure, the mail stays queued
    assert subprocess.run(args[:5] + ["./Nope/", "x"], input=b"", capture_output=True).returncode == 111
    assert subprocess.run(args[:5] + ["./Mailbox", "x"], input=b"", capture_output=True).returncode == 111


# --- syncdir on its own --------------------------------------------------------

SYNCDIR_PROBE = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

static void show(const char *what, int r) { printf("%s %d %d\n", what, r, r == -1 ? errno : 0); }

int main(void)
{
  struct stat st;
  int fd = open("a/f", O_WRONLY | O_CREAT | O_EXCL, 0640);
  show("open", fd >= 0 ? 0 : -1);
  if (fd >= 0) close(fd);
  stat("a/f", &st);
  printf("mode %o\n", (unsigned) (st.st_mode & 0777));
  show("open-excl-again", open("a/f", O_WRONLY | O_CREAT | O_EXCL, 0640) >= 0 ? 0 : -1);
  show("link", link("a/f", "b/g"));
  show("link-exists", link("a/f", "b/g"));
  show("rename", rename("b/g", "a/h"));
  show("unlink", unlink("a/h"));
  show("unlink-missing", unlink("a/h"));
  fd = open("a/f", O_RDONLY);
  show("open-plain", fd >= 0 ? 0 : -1);
  return 0;
}
"""


@needs_toolchain
def test_syncdir_calls_behave_like_libc_and_sync(tmp_path):
    trees = write_sources(tmp_path / "src")
    subprocess.run(["make"], cwd=trees["syncdir"], check=True, capture_output=True)
    (tmp_path / "probe.c").write_text(SYNCDIR_PROBE)
    subprocess.run(["cc", "-o", "probe", "probe.c", "-L", str(trees["syncdir"]), "-lsyncdir"], cwd=tmp_path, check=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    os.umask(old := os.umask(0o022))
    out = subprocess.run(["./probe"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.splitlines()
    import errno

    assert out == [
        "open 0 0",
        f"mode {0o640 & ~old:o}",
        f"open-excl-again -1 {errno.EEXIST}",
        "link 0 0",
        f"link-exists -1 {errno.EEXIST}",
        "rename 0 0",
        "unlink 0 0",
        f"unlink-missing -1 {errno.ENOENT}",
        "open-plain 0 0",
    ]
    if not shutil.which("strace"):
        return
    for leftover in ("a/f", "a/h", "b/g"):
        (tmp_path / leftover).unlink(missing_ok=True)
    trace = subprocess.run(["strace", "-f", "-e", "trace=fsync", "./probe"], cwd=tmp_path, capture_output=True,
                           text=True)
    if trace.returncode != 0:
        pytest.skip(f"strace cannot trace here: {trace.stderr.strip()[:200]}")
    fsyncs = [line for line in trace.stderr.splitlines() if line.startswith("fsync(")]
    # open(O_CREAT) 1, link across a/ and b/ 2, rename across 2, unlink 1; failures and plain open 0
    assert len(fsyncs) == 6, trace.stderr


@needs_toolchain
def test_bare_names_get_the_default_host_and_domain_and_remote_hosts_wait(built):
    """As qmail-inject and qmail-send do: "name" becomes name@defaulthost, a
    host without a dot gets .defaultdomain, and a host not in control/locals
    is remote (the miniature cannot deliver it: it waits in the queue). This
    is what lost mail to root on hosts with a dotless name."""
    _, prefix = built
    control = prefix / "control"
    control.mkdir(exist_ok=True)
    written = {"me": "mailhost\n", "defaultdomain": "localdomain\n", "locals": "mailhost\nmailhost.localdomain\n"}
    try:
        for name, text in written.items():
            (control / name).write_text(text)
        before = set(queued(prefix))
        assert inject(prefix, "nobody-here-6", "x@mailhost", "y@far.example").returncode == 0
        (n,) = set(queued(prefix)) - before
        fields = (prefix / "queue" / "todo" / str(n)).read_bytes().split(b"\0")
        assert [f for f in fields if f.startswith(b"T")] == [
            b"Tnobody-here-6@mailhost.localdomain", b"Tx@mailhost.localdomain", b"Ty@far.example"]
        # the message never completes (its remote recipient waits): run qmail-send for 3 s
        log = run_send(prefix, lambda: False, timeout=3)
        assert "to local nobody-here-6@mailhost.localdomain" in log and "to remote y@far.example" in log
        assert "deferral: the_miniature_has_no_remote_delivery" in log
        assert n in queued(prefix)  # the remote recipient keeps it queued
    finally:
        for name in written:
            (control / name).unlink(missing_ok=True)
        # without control/locals every host is local again: the unknown user is dropped
        run_send(prefix, lambda: n not in queued(prefix))
    assert n not in queued(prefix)
