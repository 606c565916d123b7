"""One class per operating-system family, behind one interface (as mkosi
has one per distribution). A Platform knows what differs between families:
how its images are made, how accounts are created in a build sandbox, the
shell library its maintainer scripts call into, where those scripts keep
their bookkeeping, how it spells architectures and versions, and the
package-manager verbs that verification needs.

Nothing outside this package branches on a family name: stages ask
`platform_for(family)` and call the interface. Adding a family is adding a
module and one line in PLATFORMS.
"""

from __future__ import annotations

from ..recipe.model import Target
from .base import PackageManager, Platform
from .debian import DebianPlatform
from .freebsd import FreeBSDPlatform
from .rhel import RhelPlatform

PLATFORMS: dict[str, Platform] = {
    platform.family: platform for platform in (DebianPlatform(), RhelPlatform(), FreeBSDPlatform())
}


def platform_for(family: str) -> Platform:
    try:
        return PLATFORMS[family]
    except KeyError:
        raise ValueError(f"no platform for family {family!r} (known: {', '.join(sorted(PLATFORMS))})") from None


def package_manager_for(target: Target) -> PackageManager:
    """The package manager that installs the target's packages on a system
    of the userland they are verified on."""
    return platform_for(target.family).package_manager_on(target.userland)


def noise_paths(target: Target) -> tuple[str, ...]:
    """Paths (regexes) any package installation changes on that system: the
    package managers' own databases, caches and logs, account backups."""
    families = dict.fromkeys((target.family, target.userland))
    return tuple(pattern for family in families for pattern in platform_for(family).noise_paths)


__all__ = ["PLATFORMS", "PackageManager", "Platform", "noise_paths", "package_manager_for", "platform_for"]
