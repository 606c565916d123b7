"""A build step is hostile too (a recipe step, or a compromised Makefile):
what it leaves in the sandbox is data. These builds plant links, odd names,
foreign owners and oversized files on their way out, and try to reach the
network and the host; the host must stay untouched every time."""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from builder.archive import MAX_BYTES_ENV
from builder.errors import BuildError
from builder.pipeline import BuildOptions, build_target
from builder.recipe.loader import load_recipe
from builder.sandbox.docker import DockerSandbox, client
from builder.sandbox.images import image_spec

from .conftest import RECIPE, TARGET, our_containers, with_patches


def _recipe_with_steps(tmp_path, *steps: str):
    text = RECIPE.read_text()
    # install-phase steps: they run last, on what the build left
    block = "".join("      - phase: install\n        run: |\n" + "".join(f"          {line}\n" for line in step.splitlines())
                    for step in steps)
    anchor = "    image: qmail-pkg/debian-12\n"
    path = tmp_path / "hostile.yaml"
    path.write_text(text.replace(anchor, anchor + "    steps_after:\n" + block, 1))
    with_patches(tmp_path)
    return load_recipe(path)


def _build(recipe, sources, out):
    options = BuildOptions(out_dir=out, sources_dir=out / "no-cache", overrides=tuple(sources.items()), quiet=True)
    return build_target(recipe, recipe.target(TARGET), options)


def _deb_file(result, path: str) -> bytes:
    deb = next(a.path for a in result.artifacts if a.format == "deb")
    return subprocess.run(f"dpkg-deb --fsys-tarfile {deb} | tar -xOf - .{path}", shell=True,
                          capture_output=True, check=True).stdout


@pytest.fixture
def host_victims(tmp_path):
    victim = tmp_path / "host" / "victim"
    victim.parent.mkdir()
    victim.write_text("host data\n")
    return victim


def test_links_planted_by_a_step_are_data_never_followed(engine, fixture_sources, tmp_path, host_victims):
    victim = host_victims
    depth = "../" * 10
    recipe = _recipe_with_steps(
        tmp_path,
        # absolute: the file the package ships later (rc) is a link to a host path
        f"ln -sf {victim} /var/qmail/rc",
        # relative: climbing out of /var/qmail/control to the same host path
        f"ln -sf {depth}{str(victim).lstrip('/')} /var/qmail/control/defaultdelivery",
    )
    result = _build(recipe, fixture_sources, tmp_path / "dist")
    assert victim.read_text() == "host data\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"]
    # the package ships its own files in place of the planted links
    assert _deb_file(result, "/var/qmail/rc").startswith(b"#!/bin/sh\n")
    assert _deb_file(result, "/var/qmail/control/defaultdelivery") == b"./Maildir/\n"


def test_a_link_to_a_folder_of_the_build_host_is_refused_not_packed(engine, fixture_sources, tmp_path, host_victims):
    """nfpm's deb writer turns a symlink whose target is a folder on the
    machine running it into a folder; the check of the package against the
    staged tree refuses that, so nothing of the host reaches a package."""
    victim = host_victims
    recipe = _recipe_with_steps(tmp_path, f"mkdir -p /var/qmail/doc && ln -s {victim.parent} /var/qmail/doc/planted")
    with pytest.raises(BuildError, match=r"is not what the recipe makes: /var/qmail/doc/planted: the package has dir"):
        _build(recipe, fixture_sources, tmp_path / "dist")
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"]
    assert not list((tmp_path / "dist").rglob("*.deb"))


def test_a_planted_link_in_place_of_a_folder_the_package_fills_fails_the_build(engine, fixture_sources, tmp_path, host_victims):
    victim = host_victims
    recipe = _recipe_with_steps(tmp_path, f"rm -rf /var/qmail/supervise && ln -s {victim.parent} /var/qmail/supervise")
    with pytest.raises(BuildError) as caught:
        _build(recipe, fixture_sources, tmp_path / "dist")
    assert str(caught.value) == (
        f"staged tree: /var/qmail/supervise/qmail-send lies below /var/qmail/supervise, which is a symlink "
        f"(-> {victim.parent}); a package cannot ship entries below anything but a folder"
    )
    assert victim.read_text() == "host data\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"]
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["logs"]


@pytest.mark.parametrize("step, message", [
    ("touch '/var/qmail/bin/two\nlines'", "member 'qmail/bin/two\\nlines': control character in the name refused"),
    ("touch /var/qmail/stray && chown 12345 /var/qmail/stray",
     "harvest: /var/qmail/stray is owned by user id 12345, which no declared account has"),
])
def test_odd_entries_left_by_a_step_are_clear_errors(engine, fixture_sources, tmp_path, step, message):
    recipe = _recipe_with_steps(tmp_path, step)
    before = our_containers()
    with pytest.raises(BuildError) as caught:
        _build(recipe, fixture_sources, tmp_path / "dist")
    assert message in str(caught.value).replace("'qmail/bin/two\nlines'", "'qmail/bin/two\\nlines'")
    assert not our_containers() - before


def test_an_oversized_tree_stops_at_the_limit(engine, fixture_sources, tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_BYTES_ENV, str(4 << 20))
    recipe = _recipe_with_steps(tmp_path, "head -c 8388608 /dev/zero > /var/qmail/huge")
    with pytest.raises(BuildError, match=r"harvest of /var/qmail: more than 4194304 bytes of files \(the limit\)"):
        _build(recipe, fixture_sources, tmp_path / "dist")


def _listener():
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    accepted: list = []

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, accepted


def _host_address() -> str:
    probe = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return probe[0] if probe else "127.0.0.1"


PROBE = "perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(PeerAddr => \"{addr}\", Timeout => 3) ? 0 : 1)'"


def test_steps_reach_neither_the_network_nor_host_files(engine, fixture_sources, tmp_path):
    server, accepted = _listener()
    marker = tmp_path / "host-only-marker"
    marker.write_text("secret\n")
    addr = f"{_host_address()}:{server.getsockname()[1]}"
    local = f"127.0.0.1:{server.getsockname()[1]}"
    try:
        # The probe itself works: with the host's network it connects.
        spec = image_spec(load_recipe(RECIPE).target(TARGET), "build")
        engine_client = client()
        output = engine_client.containers.run(spec.reference, ["sh", "-c", PROBE.format(addr=local) + " && echo reached"],
                                              network_mode="host", remove=True)
        assert b"reached" in output and accepted
        accepted.clear()
        recipe = _recipe_with_steps(
            tmp_path,
            f"if {PROBE.format(addr=addr)}; then echo REACHED-THE-HOST; exit 1; fi",
            f"if {PROBE.format(addr=local)}; then echo REACHED-LOOPBACK; exit 1; fi",
            "if getent hosts localhost.invalid example.org; then exit 1; fi",
            # 'secre[t]' matches the marker's text but not this step's own
            # text, which the step runner keeps in the sandbox
            f"if [ -e {marker} ] || grep -rqs 'secre[t]' /build /tmp /root; then echo SAW-THE-HOST; exit 1; fi",
        )
        result = _build(recipe, fixture_sources, tmp_path / "dist")
        assert result.artifacts and not accepted
    finally:
        server.close()


def test_build_sandbox_has_no_extra_privileges(engine, recipe):
    spec = image_spec(recipe.target(TARGET), "build")
    with DockerSandbox(spec.reference, role="build") as box:
        code, out = box.output(["sh", "-c", "mknod /tmp/dev c 1 3 2>&1; echo rc=$?"])
        assert "rc=0" not in out  # MKNOD is dropped: no device nodes can be planted
        config = client().api.inspect_container(box.container_id)["HostConfig"]
        assert not config.get("Binds") and not config.get("Mounts")  # nothing of the host is mounted
