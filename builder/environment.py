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

from .emulation import emulated, require_emulation
from .errors import SandboxError
from .platforms import platform_for
from .recipe.model import Target
from .sandbox import Environment, OutputSink, Sandbox
from .sandbox.docker import DockerSandbox, client, image_exists, image_identity, image_labels, send_image
from .sandbox.images import DEFINITION_LABEL, ImageSpec, image_spec
from .sandbox.jail import JailSandbox

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


def prepare_environment(target: Target, role: str, log: OutputSink = lambda line: None, engine=None) -> Environment:
    """Make sure what the target's sandboxes start from exists (bootstrap an
    image, check a base release) and say exactly which one it is. `engine`
    (builder.engines.Engine) is another machine's engine or jail host."""
    if engine is None and target.builder == "docker" and emulated(target.architecture):
        # verification runs setuid qmail-queue: the emulation must keep its privileges
        require_emulation(target.architecture, setuid=role.startswith("verify"))
    if _backend(target) is JailSandbox:
        jail = JailSandbox(target.image, role=role, engine=engine)
        return jail.base_release(log, engine.url if engine is not None else "local")
    spec = image_spec(target, role)
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


__all__ = ["BACKENDS", "ensure_image", "open_sandbox", "prepare_environment"]
