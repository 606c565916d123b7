"""What a target's sandboxes start from, made when missing, and the sandbox
of the backend the target builds with.

This is the orchestration that sits above both the mechanism
(builder/sandbox/: Docker and jails, which name no family) and the
platforms (builder/platforms/, which know how to make a family's images):
it asks the sandbox layer whether an image is there and current, asks the
target's userland platform to bootstrap it when it is not, and sends the
local image to another engine so that both build from the same image id."""

from __future__ import annotations

from collections.abc import Callable

from .emulation import emulated, host_architecture, require_emulation
from .errors import SandboxError
from .platforms import platform_for
from .recipe.model import CROSS_SUITE, Target
from .record import ToolchainRecord
from .sandbox import Environment, OutputSink, Sandbox
from .sandbox.docker import DockerSandbox, client, image_exists, image_identity, image_labels, send_image
from .sandbox.images import DEFINITION_LABEL, ImageSpec, cross_image_spec, image_spec
from .sandbox.jail import JailSandbox
from .toolchains import toolchain_named

# The sandbox backends, by the name a target's `builder` gives.
BACKENDS: dict[str, type] = {"docker": DockerSandbox, "jail": JailSandbox}


def _backend(target: Target) -> type:
    try:
        return BACKENDS[target.builder]
    except KeyError:
        raise SandboxError(f"{target.name}: unknown sandbox backend {target.builder!r}") from None


def _current(engine, spec: ImageSpec) -> bool:
    if not image_exists(engine, spec.reference):
        return False
    made_here = image_labels(engine, spec.reference).get(DEFINITION_LABEL)
    # An image we did not make is the user's choice: use it as it is.
    return made_here is None or made_here == spec.definition_hash


def ensure_image(spec: ImageSpec, log: Callable[[str], None] = lambda line: None, where=None) -> str:
    """Make sure spec.reference exists and is current on the engine `where`
    (None: the local one); return its image id. A remote engine gets the
    local engine's image when that one is current (the same id: builds on
    both give the same bytes), else one bootstrapped here and imported."""
    engine = client(where)
    if _current(engine, spec):
        return image_identity(engine, spec.reference)
    if where is not None:
        local = client()
        if _current(local, spec):
            log(f"{spec.reference}: sending the local image to {where.url}")
            send_image(spec.reference, local, engine)
            return image_identity(engine, spec.reference)
    elif image_exists(engine, spec.reference):
        log(f"{spec.reference}: definition changed, rebuilding")
    platform_for(spec.family).bootstrap(spec, log, where)
    return image_identity(engine, spec.reference)


def build_image_spec(target: Target) -> ImageSpec:
    """The image a cross build runs in, on this host's architecture: the
    toolchain's own (zig serves every target from one image), or one per
    target release with the target architecture's libraries (gnu)."""
    assert target.cross is not None
    toolchain = toolchain_named(target.cross.toolchain)
    host = host_architecture()
    if toolchain.wheels:
        return cross_image_spec(target, toolchain.name, host, shared_image=f"qmail-pkg/cross-{toolchain.name}",
                                toolchain_sha256=toolchain.sha256_of(host),
                                toolchain_warm=(*toolchain.warm, *toolchain.warm_links), suite=CROSS_SUITE)
    return cross_image_spec(target, toolchain.name, host)


def toolchain_of(target: Target) -> ToolchainRecord | None:
    """What the build record says of the compiler of a cross build."""
    if target.method != "cross" or target.cross is None:
        return None
    toolchain = toolchain_named(target.cross.toolchain)
    return ToolchainRecord(toolchain.name, toolchain.version or "the image's", toolchain.sha256_of(host_architecture()),
                           platform_for(target.family).cross_triple(target))


def prepare_environment(target: Target, role: str, log: OutputSink = lambda line: None, engine=None) -> Environment:
    """Make sure what the target's sandboxes start from exists (bootstrap an
    image, check a base release) and say exactly which one it is. `engine`
    (builder.engines.Engine) is another machine's engine or jail host."""
    cross_build = role == "build" and target.method == "cross"
    if engine is None and target.builder == "docker" and emulated(target.architecture) and not cross_build:
        # verification runs setuid qmail-queue: the emulation must keep its privileges
        require_emulation(target.architecture, setuid=role.startswith("verify"))
    if _backend(target) is JailSandbox:
        jail = JailSandbox(target.image, role=role, engine=engine)
        return jail.base_release(log, engine.url if engine is not None else "local")
    spec = build_image_spec(target) if cross_build else image_spec(target, role)
    identity = ensure_image(spec, log, engine)
    labels = image_labels(client(engine), spec.reference)
    details = tuple(sorted((key.split(".", 1)[1], value) for key, value in labels.items()
                           if key.startswith("qmail-pkg.")))
    return Environment(spec.reference, identity, details)


def open_sandbox(target: Target, image: str, *, role: str, engine=None, **options) -> Sandbox:
    """A sandbox of the backend the target builds with (docker, jail), not yet
    started: use it as a context manager. `options` are the backend's own
    (labels, command, cap_add, hostname)."""
    return _backend(target)(image, role=role, engine=engine, architecture=target.architecture, **options)


__all__ = ["BACKENDS", "build_image_spec", "ensure_image", "open_sandbox", "prepare_environment", "toolchain_of"]
