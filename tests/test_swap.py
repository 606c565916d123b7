"""A host running another qmail package (e.g. Debian's old netqmail): apt
swaps it for ours through Conflicts/Replaces, and the other package's control
files, aliases and queued mail survive the swap."""

from __future__ import annotations

import subprocess
from pathlib import Path

from builder.sandbox.docker import DockerSandbox
from builder.sandbox.images import image_spec
from builder.verify.checks import put_artifact

from .conftest import TARGET
from .test_verify import deb_of

OLD_PREINST = """#!/bin/sh
set -e
getent group nofiles >/dev/null || groupadd -g 970 nofiles
getent group qmail >/dev/null || groupadd -g 971 qmail
for u in alias:970:nofiles qmaild:971:nofiles qmaill:972:nofiles qmailp:973:nofiles \\
         qmailq:974:qmail qmailr:975:qmail qmails:976:qmail; do
    IFS=: read -r name uid group <<EOF2
$u
EOF2
    getent passwd "$name" >/dev/null || useradd -r -M -u "$uid" -g "$group" -d /var/qmail -s /usr/sbin/nologin "$name"
done
"""

OLD_POSTINST = """#!/bin/sh
set -e
mkdir -p /var/qmail/queue/mess/5 /var/qmail/queue/todo /var/qmail/alias
chown -R qmailq:qmail /var/qmail/queue
printf 'queued by the old package\\n' > /var/qmail/queue/mess/5/1234
printf 'admin@old.example\\n' > /var/qmail/alias/.qmail-postmaster
"""


def old_qmail_package(tmp_path: Path) -> Path:
    """A stand-in for Debian's old netqmail package: same ids, its own conffile."""
    root = tmp_path / "netqmail"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "var/qmail/control").mkdir(parents=True)
    (root / "var/qmail/control/me").write_text("old.example.org\n")
    (root / "DEBIAN/control").write_text(
        "Package: netqmail\nVersion: 1.06-6\nArchitecture: all\nMaintainer: Test <t@example.org>\n"
        "Provides: mail-transport-agent\nConflicts: mail-transport-agent\nReplaces: mail-transport-agent\n"
        "Description: stand-in for an older qmail package\n"
    )
    (root / "DEBIAN/conffiles").write_text("/var/qmail/control/me\n")
    for name, text in (("preinst", OLD_PREINST), ("postinst", OLD_POSTINST)):
        (root / "DEBIAN" / name).write_text(text)
        (root / "DEBIAN" / name).chmod(0o755)
    deb = tmp_path / "netqmail_1.06-6_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True, capture_output=True)
    return deb


def test_apt_swaps_an_older_qmail_package_and_keeps_its_state(built, recipe, tmp_path):
    spec = image_spec(recipe.target(TARGET), "verify")
    with DockerSandbox(spec.reference, role="verify") as box:
        code, out = box.output(["dpkg", "-i", put_artifact(box, old_qmail_package(tmp_path))])
        assert code == 0, out
        ours = put_artifact(box, deb_of(built))
        # apt resolves the conflict itself: no network needed, everything is local.
        code, out = box.output(["sh", "-c", f"DEBIAN_FRONTEND=noninteractive apt-get install -y {ours} 2>&1"])
        assert code == 0, out
        assert "Removing netqmail" in out
        code, out = box.output(["sh", "-c",
            "dpkg-query -W -f '${Package} ${Status}\\n' netqmail qmail-syncdir; "
            "cat /var/qmail/control/me /var/qmail/alias/.qmail-postmaster /var/qmail/queue/mess/5/1234; "
            "stat -c '%U %a' /var/qmail/queue/lock/trigger"])
        lines = out.splitlines()
        assert "netqmail deinstall ok config-files" in lines
        assert "qmail-syncdir install ok installed" in lines
        assert "old.example.org" in lines  # the old package's control file
        assert "admin@old.example" in lines  # its alias
        assert "queued by the old package" in lines  # its queued mail
        assert lines[-1] == "qmails 622"  # our queue state added around it
