"""Taking over a qmail installed by hand, with a real dpkg and apt.

The miniature qmail is built and installed the way the syncdir instructions
and qmail's INSTALL describe: accounts from plain useradd (ids 1000 and up),
relinked against syncdir, `make setup check`, an own supervise folder and run
script linked into /service, edited control files, and 50 messages queued
while qmail-send is down (SMTP not enabled). Then the package is installed:
- preseeded to renumber: apt install is the whole takeover, every queued
  message is delivered exactly once, nothing of the admin's is lost;
- not preseeded: refused, nothing changed.
"""

from __future__ import annotations

import time

import pytest

from builder.recipe.loader import load_recipe
from builder.sandbox.docker import DockerSandbox
from builder.sandbox.images import image_spec
from builder.toolchains import NATIVE_ENV
from builder.verify.checks import put_artifact

from .conftest import RECIPE, TARGET
from .test_verify import deb_of

# The accounts as INSTALL.ids creates them: names only, ids picked by useradd.
HAND_ACCOUNTS = """
groupadd nofiles && groupadd qmail
for u in alias:nofiles:/var/qmail/alias qmaild:nofiles:/var/qmail qmaill:nofiles:/var/qmail \
         qmailp:nofiles:/var/qmail qmailq:qmail:/var/qmail qmailr:qmail:/var/qmail qmails:qmail:/var/qmail; do
    IFS=: read -r name group home <<EOF
$u
EOF
    useradd -g "$group" -d "$home" -s /usr/sbin/nologin -M "$name"
done
"""

HAND_RUN = "#!/bin/sh\n# my own qmail-send run script, written by hand\nexec /var/qmail/rc\n"
HAND_RC = "#!/bin/sh\n# my own rc\nexec env - PATH=\"/var/qmail/bin:$PATH\" qmail-start ./Maildir/ splogger qmail\n"
MESSAGES = 50


@pytest.fixture(scope="module")
def hand_installed_tree(engine, fixture_sources, tmp_path_factory):
    """/var/qmail of a by-hand build of the miniature (syncdir relinked), as a
    tar with numeric owners, built in the build image."""
    recipe = load_recipe(RECIPE)
    target = recipe.target(TARGET)
    spec = image_spec(target, "build")
    steps = [step for step in target.steps]
    with DockerSandbox(spec.reference, role="build") as box:
        for name, tree in fixture_sources.items():
            box.put_tree(tree, f"/src/{name}")
        code, out = box.output(["sh", "-euc", HAND_ACCOUNTS])
        assert code == 0, out
        env = {"SRC_QMAIL": "/src/qmail", "SRC_SYNCDIR": "/src/syncdir", "MAKE": "make", "JOBS": "2",
               "EXTRA_CFLAGS": "", "EXTRA_LDFLAGS": "", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **NATIVE_ENV}
        for step in steps:
            code, out = box.output(["sh", "-eu", "-c", step], env=env)
            assert code == 0, out
        code, ids = box.output(["sh", "-c", "getent passwd qmailq | cut -d: -f3"])
        assert int(ids) >= 1000, ids  # useradd's own choice, not the package's 974
        archive = tmp_path_factory.mktemp("hand") / "var-qmail.tar"
        with box.open_tar("/var/qmail") as stream:
            archive.write_bytes(stream.read())
    return archive


def _hand_install(box: DockerSandbox, archive) -> None:
    code, out = box.output(["sh", "-euc", HAND_ACCOUNTS])
    assert code == 0, out
    box.put_file(archive.read_bytes(), "/tmp/var-qmail.tar")
    script = f"""
tar -C /var -xpf /tmp/var-qmail.tar --numeric-owner
mkdir -p /var/qmail/supervise/qmail-send/log /var/log/qmail/hand
printf '%s' {shq(HAND_RUN)} > /var/qmail/supervise/qmail-send/run
printf '#!/bin/sh\\nexec setuidgid qmaill multilog t /var/log/qmail/hand\\n' > /var/qmail/supervise/qmail-send/log/run
chmod 755 /var/qmail/supervise/qmail-send/run /var/qmail/supervise/qmail-send/log/run
chown qmaill /var/log/qmail/hand
printf '%s' {shq(HAND_RC)} > /var/qmail/rc && chmod 755 /var/qmail/rc
echo hand.example.org > /var/qmail/control/me
echo hand.example.org > /var/qmail/control/rcpthosts
printf 'hand.example.org\\nlocalhost\\n' > /var/qmail/control/locals
echo ./Maildir/ > /var/qmail/control/defaultdelivery
useradd -m -s /bin/sh mailuser && \
mkdir -p /home/mailuser/Maildir/new /home/mailuser/Maildir/cur /home/mailuser/Maildir/tmp
chown -R mailuser: /home/mailuser/Maildir
touch /var/qmail/supervise/qmail-send/down   # the admin keeps it down while we queue
ln -s /var/qmail/supervise/qmail-send /service/qmail-send
"""
    code, out = box.output(["sh", "-euc", script])
    assert code == 0, out
    _wait(box, "svstat /service/qmail-send | grep -q ': down'")
    code, out = box.output(["sh", "-euc", f"""
for i in $(seq 1 {MESSAGES}); do
    printf 'Subject: hand-%03d\\n\\nqueued before the takeover\\n' "$i" | /var/qmail/bin/qmail-inject mailuser
done
find /var/qmail/queue/mess -type f | wc -l"""])
    assert code == 0 and out.strip() == str(MESSAGES), out


def shq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _wait(box, condition: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while box.output(["sh", "-c", condition])[0] != 0:
        assert time.monotonic() < deadline, f"timed out waiting for: {condition}"
        time.sleep(0.5)


def _snapshot(box) -> str:
    code, out = box.output(["sh", "-c", "cat /etc/passwd /etc/group; "
                            "find /var/qmail /service -printf '%p %U %G %m %y\\n' | sort; "
                            "cat /var/qmail/supervise/qmail-send/run /var/qmail/control/*"])
    assert code == 0, out
    return out


def _svscan_box(recipe) -> DockerSandbox:
    spec = image_spec(recipe.target(TARGET), "verify")
    return DockerSandbox(spec.reference, role="verify", hostname="hand.example.org",
                         command=["sh", "-c", "mkdir -p /service && exec svscan /service"])


def test_preseeded_install_takes_over_a_hand_installed_qmail(built, recipe, hand_installed_tree):
    with _svscan_box(recipe) as box:
        _hand_install(box, hand_installed_tree)
        deb = put_artifact(box, deb_of(built))
        code, out = box.output(["sh", "-c",
            "echo 'qmail-syncdir qmail-syncdir/renumber-accounts boolean true' | debconf-set-selections && "
            f"DEBIAN_FRONTEND=noninteractive apt-get install -y {deb} 2>&1"])
        assert code == 0, out
        assert "renumbering the qmail accounts" in out and "user qmailq: uid" in out and "-> 974" in out
        assert "kept a copy of /var/qmail/supervise/qmail-send/run" in out
        assert "not linking qmail-smtpd" in out
        # the accounts have the build's ids, and the files follow them
        code, owners = box.output(["sh", "-c", "getent passwd qmailq qmails alias | cut -d: -f1,3,4; "
                                   "stat -c '%U %G %a' /var/qmail/queue/mess /var/qmail/bin/qmail-queue; "
                                   "find /var/qmail /var/log/qmail/hand -xdev -uid +999 -o -xdev -gid +999 "
                                   "| grep -v ^/home | head"])
        assert owners.splitlines()[:3] == ["qmailq:974:971", "qmails:976:971", "alias:970:970"], owners
        assert owners.splitlines()[3:5] == ["qmailq qmail 750", "qmailq qmail 4711"], owners
        assert owners.splitlines()[5:] == [], f"files still owned by the old ids: {owners}"
        # nothing of the admin's lost: control files kept, the run script backed up, no new service
        code, out = box.output(["sh", "-c", "cat /var/qmail/control/me /var/qmail/control/locals; "
                                "cat /var/backups/qmail-syncdir-takeover/var/qmail/supervise/qmail-send/run; "
                                "cat /var/backups/qmail-syncdir-takeover/var/qmail/rc; ls /service"])
        assert out.startswith("hand.example.org\nhand.example.org\nlocalhost\n")
        assert HAND_RUN.strip() in out and "# my own rc" in out
        assert out.splitlines()[-1] == "qmail-send"  # qmail-smtpd was not enabled: still not
        # qmail-send was down before: still down; the admin starts it and all 50 arrive once
        code, status = box.output(["svstat", "/service/qmail-send"])
        assert ": down" in status, status
        box.output(["sh", "-c", "rm -f /var/qmail/supervise/qmail-send/down; svc -u /service/qmail-send"])
        _wait(box, f"[ $(ls /home/mailuser/Maildir/new | wc -l) -ge {MESSAGES} ]", timeout=90)
        time.sleep(3)  # any duplicate would arrive now
        code, out = box.output(["sh", "-c", "grep -h '^Subject: ' /home/mailuser/Maildir/new/* "
                                "| sort | uniq -c | awk '{print $1}' | sort -u; "
                                "ls /home/mailuser/Maildir/new | wc -l; find /var/qmail/queue/mess -type f | wc -l"])
        assert out.split() == ["1", str(MESSAGES), "0"], out  # each once, all of them, queue empty
        code, out = box.output(["sh", "-c", "grep -c . /var/lib/qmail-syncdir/events.log; "
                                "grep -E ' (usermod|groupmod|backup|stop|takeover) ' /var/lib/qmail-syncdir/events.log "
                                "| wc -l"])
        assert int(out.split()[1]) >= 9, out  # every action logged


def test_without_the_preseed_the_install_is_refused_and_nothing_changes(built, recipe, hand_installed_tree):
    with _svscan_box(recipe) as box:
        _hand_install(box, hand_installed_tree)
        before = _snapshot(box)
        deb = put_artifact(box, deb_of(built))
        code, out = box.output(["sh", "-c", f"DEBIAN_FRONTEND=noninteractive apt-get install -y {deb} 2>&1"])
        assert code != 0
        assert "user qmailq exists with uid" in out and "974 compiled in" in out
        assert "debconf-set-selections" in out and "refusing to install" in out
        assert "usermod -g" not in out  # groupmod -g already moves the users whose group it is
        assert _snapshot(box) == before
        code, status = box.output(["sh", "-c", "dpkg-query -W -f '${Status}\\n' qmail-syncdir 2>&1; "
                                               "find /var/qmail/queue/mess -type f | wc -l"])
        assert "install ok installed" not in status and status.split()[-1] == str(MESSAGES)
