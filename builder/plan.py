"""Plan: one target of one recipe, resolved into what the sandbox will run.

The plan is pure data computed from the Recipe, the Target and the prepared
sources; it never touches a sandbox. Steps are argv vectors: the userland
platform's own steps (accounts, stripping) and patches run without a
recipe shell, recipe steps run as `sh -eu -c`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .environ import SOURCE_DATE_EPOCH
from .platforms import Platform, platform_for
from .recipe.model import Recipe, Target
from .sources import PreparedSource
from .toolchains import NATIVE_ENV, toolchain_named

BUILD_ROOT = "/build"
SOURCES_IN_SANDBOX = f"{BUILD_ROOT}/src"
PATCHES_IN_SANDBOX = f"{BUILD_ROOT}/patches"
DEFAULT_EPOCH = 315532800  # 1980-01-01, the oldest date every archive format can hold


@dataclass(frozen=True)
class BuildStep:
    number: int
    title: str  # one line for progress displays and error messages
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    target: Target
    revision: int  # package revision (recipe's, or --revision)
    sources: tuple[PreparedSource, ...]
    steps: tuple[BuildStep, ...]
    env: tuple[tuple[str, str], ...]
    source_date_epoch: int
    option_values: tuple[tuple[str, bool], ...] = ()  # every build option's value for this build
    # the number of the last step before the platform's finishing steps
    # (stripping): the installed tree is complete from then on
    installed_after: int = 0

    @property
    def variant(self) -> dict[str, bool]:
        """The options set otherwise than the recipe's defaults (a variant build)."""
        defaults = self.recipe.option_defaults()
        return {name: value for name, value in self.option_values if defaults.get(name) != value}

    @property
    def version(self) -> str:
        return self.recipe.package.version

    @property
    def platform(self) -> Platform:
        return platform_for(self.target.family)

    @property
    def userland(self) -> Platform:
        """The platform of the build image's userland (its tools run the steps)."""
        return platform_for(self.target.userland)

    @property
    def overridden(self) -> tuple[str, ...]:
        return tuple(source.name for source in self.sources if source.overridden)

    def cache_key(self, environment: str, tool: str) -> str:
        """Everything that decides the build's output, hashed: the target as
        resolved (never a path on this host), the package's metadata and each
        format's section, the sources and patches by content, the build image
        or base release by identity, the tool itself (its code, templates and
        the nfpm it drives, as `tool`), the revision and SOURCE_DATE_EPOCH.
        What only changes how fast it builds (make -j) is left out."""
        target = {key: value for key, value in asdict(self.target).items()
                  if key not in ("position", "patches", "jobs", "name", "architectures")}
        recipe = self.recipe
        material = {
            "target": target,
            "package": asdict(recipe.package),
            "layout": asdict(recipe.layout),
            "services": asdict(recipe.services),
            "options": {key: repr(value) for key, value in sorted(recipe.options.items())},
            "revision": self.revision,
            "sources": [(s.name, s.sha256, s.overridden) for s in self.sources],
            "patches": [(p.file.name, p.source, p.strip, _file_sha256(p.file)) for p in self.target.active_patches],
            "env": [(k, v) for k, v in self.env if k != "JOBS"],
            "epoch": self.source_date_epoch,
            "option_values": list(self.option_values),
            "environment": environment,
            "tool": tool,
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_date_epoch(target: Target, sources: tuple[PreparedSource, ...]) -> int:
    """The time every archive member and manifest carries: $SOURCE_DATE_EPOCH,
    else the recipe's build.source_date_epoch, else the newest member of the
    pinned source tarballs (the same sources give the same time, wherever and
    whenever they are built), else a fixed date. The CLI reads the variable
    before a build starts (builder/environ.py), so a bad value stops it there."""
    from_environment = SOURCE_DATE_EPOCH.read()  # a bad value is an error, never silently passed over
    if from_environment is not None:
        return from_environment
    if target.source_date_epoch is not None:
        return target.source_date_epoch
    newest = [source.newest for source in sources if source.newest]
    return max(newest) if newest else DEFAULT_EPOCH


def cross_environment(target: Target) -> dict[str, str]:
    """CC, CC_FOR_BUILD, CROSS and STRIP for the target's build method."""
    if target.method != "cross" or target.cross is None:
        return dict(NATIVE_ENV)
    family = platform_for(target.family)
    return {**toolchain_named(target.cross.toolchain).env(family.cross_triple(target)),
            **family.cross_environment(target)}


def _title(script: str) -> str:
    """A step's leading comment, else its first command, cut to one short line."""
    lines = [line.strip() for line in script.splitlines() if line.strip()]
    if lines and lines[0].startswith("#"):
        text = lines[0].lstrip("#").strip()
    else:
        text = next((line for line in lines if not line.startswith("#")), "(empty step)")
    return text if len(text) <= 72 else text[:69] + "..."


def account_ids(target: Target) -> dict[str, str]:
    """The accounts' ids for the steps, as name=id pairs (root=0 first): a
    recipe compiles them in from here, never from the build machine's
    passwd, which a farm building the source package does not fill."""
    users = " ".join(["root=0", *(f"{user.name}={user.uid}" for user in target.accounts.users)])
    groups = " ".join(["root=0", *(f"{group.name}={group.gid}" for group in target.accounts.groups)])
    return {"ACCOUNT_UIDS": users, "ACCOUNT_GIDS": groups}


def make_plan(
    recipe: Recipe,
    target: Target,
    sources: tuple[PreparedSource, ...],
    *,
    revision: int | None = None,
    jobs: int | None = None,
    epoch: int | None = None,
    option_values: dict[str, bool] | None = None,
) -> Plan:
    jobs = jobs or target.jobs or os.cpu_count() or 1
    epoch = source_date_epoch(target, sources) if epoch is None else epoch
    env: dict[str, str] = {
        "MAKE": target.make,
        "JOBS": str(jobs),
        "EXTRA_CFLAGS": " ".join(target.cflags),
        "EXTRA_LDFLAGS": " ".join(target.ldflags),
        "PREFIX": recipe.layout.prefix,
        "SOURCE_DATE_EPOCH": str(epoch),
        "LC_ALL": "C",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        # the compilers: the target's (CC) and the build machine's (CC_FOR_BUILD,
        # for programs the build runs), CROSS the target triple of a cross build
        **cross_environment(target),
    }
    for source in sources:
        env[f"SRC_{source.name.upper()}"] = f"{SOURCES_IN_SANDBOX}/{source.name}"
    env.update(account_ids(target))
    env.update(dict(target.env))

    userland = platform_for(target.userland)
    titled: list[tuple[str, tuple[str, ...]]] = userland.account_steps(target.accounts)
    for patch in target.active_patches:
        argv = (
            "patch", "--batch", "--forward", f"-p{patch.strip}",
            "-d", f"{SOURCES_IN_SANDBOX}/{patch.source}",
            "-i", f"{PATCHES_IN_SANDBOX}/{patch.file.name}",
        )
        titled.append((f"apply {patch.file.name} to {patch.source}", argv))
    values = recipe.option_defaults() if option_values is None else option_values
    for script in target.steps_for(values):
        titled.append((_title(script), ("sh", "-eu", "-c", script)))
    recipe_steps = len(titled)
    roots = (recipe.layout.prefix, *recipe.layout.harvest)
    titled += userland.finish_steps(roots)
    if target.method == "cross":
        titled += platform_for(target.family).cross_finish_steps(roots)
    steps = tuple(BuildStep(number, title, argv) for number, (title, argv) in enumerate(titled, 1))
    return Plan(
        recipe=recipe,
        target=target,
        revision=revision or recipe.package.revision,
        sources=tuple(sources),
        steps=steps,
        env=tuple(env.items()),
        source_date_epoch=epoch,
        option_values=tuple(sorted(values.items())),
        installed_after=recipe_steps,
    )
