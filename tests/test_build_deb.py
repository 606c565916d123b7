"""The first vertical slice, for real: recipe -> Docker build -> .deb -> dpkg -i
in a clean container, with owners, modes, setuid and syncdir linkage checked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from builder.environment import ensure_image
from builder.errors import BuildError
from builder.sandbox.docker import LABEL, OWNER_LABEL, DockerSandbox, client
from builder.sandbox.images import image_spec
from builder.verify.checks import check_syncdir_symbols, put_artifact
from builder.verify.install import install_and_check

from .conftest import RECIPE, ROOT, TARGET, our_containers, with_patches


def deb_of(result) -> Path:
    return next(a.path for a in result.artifacts if a.format == "deb")


def test_artifact_and_record_written(built):
    deb = deb_of(built)
    assert deb.name == "qmail-syncdir_1.03-1+deb12_amd64.deb"
    record = json.loads(built.record_path.read_text())
    assert record["target"] == TARGET and record["version"] == "1.03-1"
    # the miniature recipe pins the miniature tarballs: an official build from the source cache
    assert record["official"] is True and record["overridden_sources"] == [] and record["schema"] == 2
    assert record["accounts"]["users"]["qmailq"]["uid"] == 974
    assert record["artifacts"][0]["sha256"] == __import__("hashlib").sha256(deb.read_bytes()).hexdigest()
    log = built.log_path.read_text()
    assert "==> step 19/19" in log and "libsyncdir.a" in log and "ok: qmail-syncdir_1.03-1+deb12_amd64.deb" in log
    # nothing but the finished files in the target folder
    provenance = built.record_path.name.replace(".build.json", ".intoto.json")
    stem = deb.name.removesuffix(".deb")
    companions = [f"{stem}.buildinfo", f"{stem}.changes"]  # for dput, reprepro include, debrebuild
    assert sorted(p.name for p in deb.parent.iterdir()) == sorted([deb.name, built.record_path.name, provenance,
                                                                    *companions])
    assert sorted(record["companions"]) == sorted(companions)
    assert sorted(p.name for p in built.companions) == sorted(companions)


def test_dpkg_deb_control_and_contents(built):
    deb = deb_of(built)
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: qmail-syncdir" in info and "Version: 1.03-1+deb12" in info
    assert "Section: mail" in info and "Provides: mail-transport-agent" in info
    assert "Conflicts: mail-transport-agent" in info
    assert "UNOFFICIAL BUILD" not in info
    for script in ("preinst", "postinst", "prerm", "postrm"):
        assert f" {script}" in info
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    rows = {line.split()[-1].rstrip("/"): line.split() for line in listing.splitlines() if " -> " not in line}
    assert rows["./var/qmail/bin/qmail-queue"][:2] == ["-rws--x--x", "qmailq/qmail"]
    assert rows["./var/qmail/alias"][:2] == ["drwxr-sr-x", "alias/qmail"]
    assert rows["./var/qmail"][:2] == ["drwxr-xr-x", "root/qmail"]
    # the queue is state: never shipped, recreated by the scripts
    assert not [path for path in rows if path.startswith("./var/qmail/queue")]
    control = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True, text=True).stdout
    assert "/var/qmail/control/defaultdelivery" in control


def test_installs_on_a_clean_system_with_exact_ownership(built, recipe):
    results = install_and_check(recipe, recipe.target(TARGET), deb_of(built), built.record_path)
    failed = [f"{r.name}: {r.evidence}" for r in results if not r.passed]
    assert not failed, failed
    names = [r.name for r in results]
    assert "layout" in names and "syncdir symbols" in names and "dpkg verifies the installed files" in names


def test_queue_state_recreated_with_owners_modes_and_fifo(built, recipe):
    target = recipe.target(TARGET)
    spec = image_spec(target, "verify")
    ensure_image(spec)
    with DockerSandbox(spec.reference, role="verify") as box:
        path = put_artifact(box, deb_of(built))
        code, out = box.output(["dpkg", "-i", path])
        assert code == 0, out
        code, out = box.output(
            ["stat", "-c", "%F %a %U %G %n", "/var/qmail/queue/lock/trigger", "/var/qmail/queue/mess/22",
             "/var/qmail/queue/lock/sendmutex", "/var/qmail/queue/info", "/var/qmail/bin/qmail-queue"]
        )
        assert code == 0, out
        assert out.splitlines() == [
            "fifo 622 qmails qmail /var/qmail/queue/lock/trigger",
            "directory 750 qmailq qmail /var/qmail/queue/mess/22",
            "regular empty file 600 qmails qmail /var/qmail/queue/lock/sendmutex",
            "directory 700 qmails qmail /var/qmail/queue/info",
            "regular file 4711 qmailq qmail /var/qmail/bin/qmail-queue",
        ]
        code, out = box.output(["getent", "passwd", "qmailq"])
        assert out.split(":")[2:4] == ["974", "971"]


def test_syncdir_check_fails_on_a_binary_without_syncdir(built, recipe):
    """The symbol check can fail: /bin/ls imports link/unlink from libc."""
    spec = image_spec(recipe.target(TARGET), "verify")
    with DockerSandbox(spec.reference, role="verify") as box:
        result = check_syncdir_symbols(box, ["/usr/bin/ln"])
    assert not result.passed and "imports" in result.evidence


def test_failed_build_leaves_nothing_in_the_output_folder(engine, recipe, fixture_sources, tmp_path):
    from builder.pipeline import BuildOptions, build_target

    broken = dict(fixture_sources)
    bad_tree = tmp_path / "broken-qmail"
    subprocess.run(["cp", "-a", str(fixture_sources["qmail"]), str(bad_tree)], check=True)
    (bad_tree / "make-load.sh").write_text("exit 1\n")  # the relink step's grep must fail
    broken["qmail"] = bad_tree
    out = tmp_path / "dist"
    options = BuildOptions(out_dir=out, sources_dir=tmp_path / "cache", overrides=tuple(broken.items()), quiet=True)
    before = our_containers()
    with pytest.raises(BuildError, match=r"step \d+ of \d+ failed"):
        build_target(recipe, recipe.target(TARGET), options)
    assert sorted(p.name for p in out.iterdir()) == ["logs"]  # only the log, no partial artifacts
    assert not our_containers() - before, "build containers must be removed on failure"


def test_installs_without_daemontools_and_says_how_to_enable(built, recipe):
    """The build image has no daemontools: dpkg -i still succeeds and explains."""
    spec = image_spec(recipe.target(TARGET), "build")
    with DockerSandbox(spec.reference, role="verify") as box:
        assert box.output(["sh", "-c", "command -v svscan || echo none"])[1].strip() == "none"
        code, out = box.output(["dpkg", "-i", put_artifact(box, deb_of(built))])
        assert code == 0, out
        assert "daemontools" in out and "ln -s /var/qmail/supervise/qmail-send" in out
        code, out = box.output(["stat", "-c", "%U %a", "/var/qmail/control/me", "/var/qmail/queue/lock/trigger"])
        assert code == 0 and out.split() == ["root", "644", "qmails", "622"]


def test_hand_installed_qmail_with_other_ids_is_refused_untouched(built, recipe):
    """qmail installed by hand (useradd picked the ids): dpkg -i stops in preinst,
    names the conflict and what to do, and changes nothing."""
    spec = image_spec(recipe.target(TARGET), "verify")
    with DockerSandbox(spec.reference, role="verify") as box:
        code, out = box.output(["sh", "-c",
            "groupadd nofiles && groupadd qmail && useradd -g qmail qmailq && "
            "mkdir -p /var/qmail/control && echo hand.example.org > /var/qmail/control/me && "
            "getent passwd qmailq"])
        assert code == 0, out
        hand_uid = out.split(":")[2]
        code, out = box.output(["dpkg", "-i", put_artifact(box, deb_of(built))])
        assert code != 0
        assert f"user qmailq exists with uid {hand_uid}" in out and "974" in out
        assert "usermod" in out  # says what to do
        code, out = box.output(["sh", "-c",
            "getent passwd alias qmails || echo no-new-users; cat /var/qmail/control/me; "
            "dpkg-query -W -f '${Status}\\n' qmail-syncdir 2>&1; ls /var/qmail"])
        assert "no-new-users" in out and "hand.example.org" in out
        assert "installed" not in out.replace("not-installed", "")
        assert out.split()[-1] == "control"  # nothing unpacked beside the hand install


def test_lintian_clean_with_the_recipes_overrides(built):
    """Debian's own checker: no error or warning beyond the documented overrides."""
    result = subprocess.run(
        ["lintian", "--fail-on", "error,warning", "--no-tag-display-limit", str(deb_of(built))],
        capture_output=True, text=True,
    )
    findings = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and not findings, findings
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb_of(built))], capture_output=True, text=True).stdout
    assert "usr/share/doc/qmail-syncdir/copyright" in listing
    assert "usr/share/doc/qmail-syncdir/changelog.Debian.gz" in listing
    assert "usr/share/lintian/overrides/qmail-syncdir" in listing


def test_rebuild_is_bit_identical(built, recipe, miniature, tmp_path):
    """Same recipe, sources and SOURCE_DATE_EPOCH: the same bytes."""
    from builder.pipeline import BuildOptions, build_target

    options = BuildOptions(out_dir=tmp_path, sources_dir=miniature[1], revision=1, quiet=True, use_cache=False)
    again = build_target(recipe, recipe.target(TARGET), options)
    assert not again.cached
    assert deb_of(again).read_bytes() == deb_of(built).read_bytes()


def test_recipe_patches_are_applied_in_the_sandbox(engine, recipe, fixture_sources, tmp_path):
    """A patch listed in the recipe (file under patches/) changes what gets installed."""
    from builder.pipeline import BuildOptions, build_target
    from builder.recipe.loader import load_recipe

    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "boot-comment.patch").write_text(
        "--- a/home.sh\n+++ b/home.sh\n@@ -1,2 +1,3 @@\n"
        " # Boot script: start the miniature qmail-send with Maildir delivery.\n"
        "+# patched by qmail-pkg's patch step\n"
        " exec env - PATH=\"QMAIL/bin:$PATH\" qmail-start ./Maildir/\n"
    )
    text = tmp_path / "r.yaml"
    text.write_text(RECIPE.read_text().replace(
        "\npatches:\n", "\npatches:\n  - {file: boot-comment.patch, source: qmail, targets: [debian-12]}\n", 1))
    with_patches(tmp_path)
    patched = load_recipe(text)
    assert [p.file.name for p in patched.target(TARGET).active_patches] == ["boot-comment.patch"]
    assert patched.target("debian-13").active_patches == ()
    options = BuildOptions(out_dir=tmp_path / "dist", sources_dir=tmp_path / "cache",
                           overrides=tuple(fixture_sources.items()), quiet=True)
    result = build_target(patched, patched.target(TARGET), options)
    boot = subprocess.run(
        f"dpkg-deb --fsys-tarfile {deb_of(result)} | tar -xOf - ./var/qmail/boot/home",
        shell=True, capture_output=True, text=True, check=True,
    ).stdout
    assert "# patched by qmail-pkg's patch step" in boot
    assert "apply boot-comment.patch to qmail" in result.log_path.read_text()


@pytest.mark.parametrize("target_name", ["debian-11", "debian-13"])
def test_other_targets_build_and_install(engine, recipe, fixture_sources, tmp_path, target_name):
    """gcc 10 (bullseye) and gcc 14 (trixie, with the recipe's -Wno-error flags)."""
    from builder.pipeline import BuildOptions, build_target

    target = recipe.target(target_name)
    options = BuildOptions(out_dir=tmp_path, sources_dir=tmp_path / "cache",
                           overrides=tuple(fixture_sources.items()), quiet=True)
    result = build_target(recipe, target, options)
    results = install_and_check(recipe, target, deb_of(result), result.record_path)
    failed = [f"{r.name}: {r.evidence}" for r in results if not r.passed]
    assert not failed, failed


def test_build_sandbox_is_isolated_and_cleaned(engine, recipe):
    """No network, no privileges, labelled; `qmail-pkg clean` removes what a
    killed run left and keeps the sandboxes of a run still going."""
    spec = image_spec(recipe.target(TARGET), "build")
    ended = subprocess.Popen(["true"])  # a process that has ended: the "killed run"
    ended.wait()
    dead = f"{socket.gethostname()}/{ended.pid}"
    box = DockerSandbox(spec.reference, role="build", labels={"qmail-pkg.target": TARGET, OWNER_LABEL: dead})
    box.start()  # deliberately never destroyed
    live = DockerSandbox(spec.reference, role="build", labels={"qmail-pkg.target": TARGET})  # this process's
    live.start()
    config = client().api.inspect_container(box.container_id)
    host = config["HostConfig"]
    assert host["NetworkMode"] == "none" and host["Privileged"] is False
    assert "no-new-privileges" in host["SecurityOpt"] and "NET_RAW" in host["CapDrop"]
    assert config["Config"]["Labels"][LABEL] == "build"
    code, out = box.output(["sh", "-c", "cat /sys/class/net/*/operstate 2>/dev/null; ls /sys/class/net"])
    assert out.split() == ["unknown", "lo"]  # loopback only
    result = subprocess.run([sys.executable, "-m", "builder.cli", "clean"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and box.container_id[:12] in result.stdout.splitlines()[0]
    assert f"kept 1 of runs still going on this machine: {live.container_id[:12]}" in result.stdout
    left = {c.id for c in client().containers.list(all=True, filters={"label": LABEL})}
    assert box.container_id not in left and live.container_id in left
    result = subprocess.run([sys.executable, "-m", "builder.cli", "clean", "--all"], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0 and live.container_id[:12] in result.stdout
    live.destroy()  # already gone: no error


def test_library_probe_skips_strip_copies_and_fails_loudly(engine, recipe):
    """The probe runs while the last step strips binaries into temporary
    copies: once a copy (ELF magic, half written) made dpkg-shlibdeps fail,
    the failure was swallowed, and a package went out without
    Depends: libc6 (dpkg-shlibdeps: "cannot read" a copy renamed away).
    Copies are skipped, a real failure is the probe's, and the builder then
    probes again once the steps are over."""
    from builder.platforms import platform_for
    from builder.platforms.gnu import STRIP_SUFFIX

    target = recipe.target(TARGET)
    spec = image_spec(target, "build")
    probe = list(platform_for(target.family).dependency_probe(("/probe",)))
    with DockerSandbox(spec.reference, role="build") as box:
        box.output(["sh", "-c", f"mkdir /probe && cp /bin/true /probe/prog && "
                                f"printf '\\177ELF' > /probe/prog{STRIP_SUFFIX}"])
        code, out = box.output(probe)
        assert code == 0 and "shlibs:Depends=libc6" in out, out
        # dpkg-shlibdeps failing as it did on a copy renamed away ("cannot read"): the probe fails
        box.output(["sh", "-c", "mkdir /stub && printf '#!/bin/sh\\necho cannot read >&2\\nexit 25\\n' "
                                "> /stub/dpkg-shlibdeps && chmod 755 /stub/dpkg-shlibdeps"])
        code, out = box.output(["env", "PATH=/stub:/usr/bin:/bin", *probe])
        assert code != 0 and "cannot read" in out, out  # xargs reports 123


def test_a_build_from_overridden_sources_is_marked_unofficial(engine, recipe, fixture_sources, tmp_path):
    """--source (a development override) can never pass for an official build."""
    from builder.pipeline import BuildOptions, build_target

    result = build_target(recipe, recipe.target(TARGET), BuildOptions(
        out_dir=tmp_path, sources_dir=tmp_path / "no-cache", overrides=tuple(fixture_sources.items()), quiet=True))
    record = json.loads(result.record_path.read_text())
    assert record["official"] is False and set(record["overridden_sources"]) == {"qmail", "syncdir"}
    info = subprocess.run(["dpkg-deb", "--info", str(deb_of(result))], capture_output=True, text=True).stdout
    assert "UNOFFICIAL BUILD" in info
