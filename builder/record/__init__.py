"""The build record (build.py) and its parts (parts.py), read as hostile
data (reading.py)."""

from .build import BuildRecord
from .parts import (
    ArtifactRecord,
    ImageRecord,
    ManifestEntry,
    PatchRecord,
    SourceRecord,
    ToolchainRecord,
    UserRecord,
    facts_to_json,
)
from .reading import (
    ABSOLUTE,
    ARCHITECTURE,
    FILE,
    PACKAGE,
    SHA256,
    SUFFIX,
    SUITE,
    TARGET,
    VERSION,
    RecordError,
)

__all__ = ["ABSOLUTE", "ARCHITECTURE", "ArtifactRecord", "BuildRecord", "FILE", "ImageRecord", "ManifestEntry",
           "PACKAGE", "PatchRecord", "RecordError", "SHA256", "SUFFIX", "SUITE", "SourceRecord", "TARGET",
           "ToolchainRecord", "UserRecord", "VERSION", "facts_to_json"]
