"""What the pages show, as typed values: collect.py makes them from the
tree, the templates render them. Every string here may come from hostile
data (records, evidence); the templates escape all of it.

`gaps()` says in plain words what was not verified for one package, so
that the page never lets an absent check pass for a passed one."""

from __future__ import annotations

from dataclasses import dataclass

from ..evidence import Evidence
from ..record import BuildRecord
from ..repo.base import Instructions, Listed
from .chart import Chart

NOT_HERE = "not verified here"


@dataclass(frozen=True)
class Gap:
    short: str  # a word or two for the index's column
    text: str  # the sentence on the package's page
    applies: bool = True  # False: a check that does not apply to this format (said on its page only)


@dataclass(frozen=True)
class EvidenceView:
    evidence: Evidence
    href: str  # its copy in the tree, from the root
    chart: Chart | None = None  # power cuts only


@dataclass(frozen=True)
class PackageView:
    format: str
    family: str  # of the systems that install it
    listed: Listed
    size: int
    sha256: str  # of the file as the tree serves it
    href: str  # the file, from the root
    page: str  # its page, from the root
    page_path: tuple[str, ...]  # the same, as folders and file name
    record: BuildRecord | None
    record_href: str  # "" when the tree holds no readable copy
    provenance_href: str
    evidence: tuple[EvidenceView, ...]
    gaps: tuple[Gap, ...]

    @property
    def built_sha256(self) -> str:
        """What the build made (rpm signs into the file it publishes)."""
        if self.record is None or not self.record.names(self.listed.file):
            return self.sha256
        return self.record.artifact(self.listed.file).sha256

    @property
    def summary(self) -> str:
        """The package's own one-line description, as it says it."""
        if self.record is None or not self.record.names(self.listed.file):
            return ""
        facts = self.record.artifact(self.listed.file).facts
        fields = dict(facts.fields) if facts is not None else {}
        for key in ("Description", "Summary", "comment"):
            if fields.get(key):
                return fields[key].splitlines()[0]
        return ""

    @property
    def built(self) -> str:
        return self.record.finished if self.record is not None else ""

    def of_kind(self, kind: str) -> tuple[EvidenceView, ...]:
        return tuple(view for view in self.evidence if view.evidence.kind == kind)


@dataclass(frozen=True)
class KeyView:
    file: str  # in the tree
    kind: str  # OpenPGP | pkg RSA
    fingerprint: str  # as the user compares it ("" when it cannot be told)
    how: str  # what the fingerprint is


@dataclass(frozen=True)
class FormatView:
    format: str
    label: str
    area: str  # what its areas are called
    packages: tuple[PackageView, ...]
    instructions: tuple[Instructions, ...]


@dataclass(frozen=True)
class Site:
    title: str
    base_url: str
    generated: str  # RFC 3339 UTC
    tool: str
    formats: tuple[FormatView, ...]
    keys: tuple[KeyView, ...]

    @property
    def packages(self) -> tuple[PackageView, ...]:
        return tuple(package for view in self.formats for package in view.packages)


# What each kind of evidence is called in a gap, and the command that makes it.
_CHECKS = (
    ("verify", "lifecycle", "Install, upgrade with mail in flight, remove and purge (qmail-pkg verify)"),
    ("lint", "lint", "The format's linter (qmail-pkg lint: lintian, rpmlint, the .pkg read back)"),
    ("reproducible", "reproducibility", "A second build under variation giving the same bytes "
                                        "(qmail-pkg build --check-reproducible)"),
    ("power-cut", "power cuts", "Acknowledged mail through real power cuts (qmail-pkg verify --power-cut)"),
)


def gaps(family: str, record: BuildRecord | None, problem: str, provenance: bool,
         evidence: tuple[Evidence, ...]) -> tuple[Gap, ...]:
    """What was not verified for one package, in plain words."""
    found: list[Gap] = []
    if record is None:
        found.append(Gap("build record", problem or "Its build record is not in this tree (it was published before "
                                                    "qmail-pkg copied records): what went into it is not shown."))
    if record is not None and not provenance:
        found.append(Gap("provenance", "No provenance statement naming these bytes was published with it."))
    kinds = {item.kind for item in evidence}
    for kind, short, words in _CHECKS:
        if kind in kinds:
            continue
        if kind == "verify" and family == "freebsd":
            found.append(Gap(short, f"{words}: {NOT_HERE}. Its lifecycle needs a FreeBSD machine, which the hosts "
                                    "that checked it do not have; the package was read back, not installed."))
        else:
            found.append(Gap(short, f"{words}: {NOT_HERE}; no evidence of it came with this file."))
    if family == "debian" and "piuparts" not in kinds:
        found.append(Gap("piuparts", f"Debian's own package tester (qmail-pkg piuparts): {NOT_HERE}."))
    elif family != "debian":
        found.append(Gap("piuparts", "piuparts, Debian's own package tester, does not apply: it tests .deb "
                                     "packages only.", applies=False))
    for item in evidence:
        if item.kind == "power-cut" and not any(row.variant == "baseline" for row in item.power_cut):
            found.append(Gap("baseline", "The power cuts ran without a baseline (the same qmail without "
                                         "syncdir): the difference syncdir makes is not shown."))
        title = item.title[:1].upper() + item.title[1:]
        if not item.passed:
            found.append(Gap(f"{item.title}: FAILED", f"{title}: FAILED; see its steps."))
        for step in item.steps:
            if step.skipped:
                reason = step.evidence.splitlines()[0] if step.evidence.strip() else "no reason given"
                found.append(Gap(f"{item.title}: a step not run", f"{title}: {step.name}: not run there ({reason})."))
    return tuple(found)


__all__ = ["EvidenceView", "FormatView", "Gap", "KeyView", "NOT_HERE", "PackageView", "Site", "gaps"]
