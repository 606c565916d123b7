"""What happens when things go wrong: Ctrl-C during a build, a failed upgrade
(dpkg's abort-upgrade path), and the offline selftest a new user runs first."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from builder.sandbox.docker import LABEL, DockerSandbox, client
from builder.sandbox.images import image_spec
from builder.verify.checks import put_artifact

from .conftest import RECIPE, ROOT, TARGET, our_containers, with_patches
from .test_verify import deb_of, repack_preinst


def _default_signals() -> None:
    # A shell's background job inherits SIGINT ignored; a user's Ctrl-C is not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("signum, code, word",
                         [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_removes_the_container_and_leaves_nothing(engine, fixture_sources, tmp_path, signum, code, word):
    out = tmp_path / "dist"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # The real recipe plus one slow last step, so that the signal lands inside the sandbox.
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(RECIPE.read_text().replace(
        "    image: qmail-pkg/debian-12\n",
        "    image: qmail-pkg/debian-12\n    steps_after: [{phase: install, run: sleep 60}]\n"))
    with_patches(tmp_path)
    args = [sys.executable, "-m", "builder.cli", "build", str(recipe), "--target", TARGET, "--out", str(out)]
    for name, path in fixture_sources.items():
        args += ["--source", f"{name}={path}"]
    before = our_containers()
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TMPDIR": str(scratch)}, preexec_fn=_default_signals)
    log = out / "logs" / f"{TARGET}.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and re.search(r"==> step \d+/\d+: sleep 60", log.read_text()):
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the build never reached its last step")
    assert client().containers.list(filters={"label": LABEL}), "a build container should be running now"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert f"qmail-pkg: {word}; sandboxes removed" in stderr and "Traceback" not in stderr
    assert not our_containers() - before
    assert sorted(p.name for p in out.iterdir()) == ["logs"]
    assert list(scratch.iterdir()) == []  # no temporary files left


def test_failed_upgrade_brings_the_services_back(built, built_next, recipe, tmp_path):
    """New preinst fails after stopping qmail-send: dpkg runs the old postinst
    with abort-upgrade, which must start qmail-send again."""
    failing = repack_preinst(deb_of(built_next), tmp_path, append="echo 'simulated failure' >&2; exit 1\n")
    spec = image_spec(recipe.target(TARGET), "verify")
    box = DockerSandbox(spec.reference, role="verify",
                        command=["sh", "-c", "mkdir -p /service && exec svscan /service"])
    with box:
        code, out = box.output(["dpkg", "-i", put_artifact(box, deb_of(built))])
        assert code == 0, out
        deadline = time.monotonic() + 30
        while ": up" not in box.output(["svstat", "/service/qmail-send"])[1] and time.monotonic() < deadline:
            time.sleep(0.5)
        code, out = box.output(["dpkg", "-i", put_artifact(box, failing)])
        assert code != 0 and "simulated failure" in out
        assert "stopped qmail-send" in out or "svc -d" in out or "down" in out, out
        code, version = box.output(["dpkg-query", "-W", "-f", "${Version} ${Status}", "qmail-syncdir"])
        assert version == "1.03-1+deb12 install ok installed", version
        time.sleep(2)
        status = box.output(["svstat", "/service/qmail-send"])[1]
        assert ": up" in status, f"abort-upgrade left qmail-send down: {status}\n{out}"


def test_selftest_passes_offline(engine, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "builder.cli", "selftest", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout and "FAIL" not in result.stdout
    assert list((tmp_path / TARGET).glob("*.deb"))
