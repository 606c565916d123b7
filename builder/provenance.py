"""Provenance in the in-toto attestation layout (Statement v1) with a SLSA
v1 build provenance predicate, so that existing verifiers can read what the
build record says: which artifacts (by sha256) came from which recipe,
sources, patches and build image, made by which tool, when. Unsigned: the
publishing step signs what it publishes; remote build engines never hold a key.
"""

from __future__ import annotations

from . import __version__
from .record import BuildRecord

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://qmail-syncdir.invalid/qmail-pkg/build/v1"


def statement(record: BuildRecord) -> dict:
    subjects = [{"name": a.file, "digest": {"sha256": a.sha256}} for a in record.artifacts]
    dependencies = [
        {"name": f"source:{s.name}", "uri": s.origin, "digest": {"sha256": s.sha256},
         "annotations": {"overridden": s.overridden}}
        for s in record.sources
    ]
    dependencies += [{"name": f"patch:{p.file}", "digest": {"sha256": p.sha256}} for p in record.patches]
    image = record.image
    identity = image.identity.split(":", 1)
    dependencies.append({
        "name": "build-environment",
        "uri": image.reference,
        "digest": {identity[0] if len(identity) == 2 else "id": identity[-1]},
        "annotations": dict(image.details),
    })
    if record.toolchain is not None:
        dependencies.append({"name": f"toolchain:{record.toolchain.name}", "uri": record.toolchain.target,
                             "digest": {"sha256": record.toolchain.sha256},
                             "annotations": {"version": record.toolchain.version}})
    dependencies.append({"name": "recipe", "uri": record.recipe_path, "digest": {"sha256": record.recipe_sha256}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"target": record.target, "architecture": record.architecture,
                                       "revision": record.revision, "package": record.package,
                                       "official": record.official,
                                       "method": record.method},
                "internalParameters": {"SOURCE_DATE_EPOCH": record.source_date_epoch,
                                       "cache_key": record.cache_key, "steps": list(record.steps),
                                       "accounts": record.to_json()["accounts"], "tools": dict(record.tools)},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": f"qmail-pkg/{__version__}", "version": {"qmail-pkg": __version__}},
                "metadata": {"invocationId": record.cache_key, "startedOn": record.started,
                             "finishedOn": record.finished},
                "byproducts": [{"name": name, "digest": {"sha256": digest}} for name, digest in record.companions],
            },
        },
    }
