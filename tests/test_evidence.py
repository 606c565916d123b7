"""Evidence files: written whole and read back as hostile data (they travel
from the jobs that checked an artifact to the job that publishes it).
No Docker here: the real writers are tried in test_site.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from builder.evidence import MAX_STEP_TEXT, CheckResult, Evidence, PowerCutCounts
from builder.record import RecordError
from builder.site.chart import chart
from builder.site.model import NOT_HERE, gaps
from builder.site.render import visible

SHA = "ab" * 32


def made(**changes) -> Evidence:
    steps = changes.pop("steps", [CheckResult("lintian", True, "clean")])
    return Evidence.made(changes.pop("kind", "lint"), Path("/dist/debian-12/qmail-syncdir_1.03-1+deb12_amd64.deb"),
                         SHA, True, steps, **changes)


def test_written_in_one_rename_and_read_back_the_same(tmp_path):
    evidence = made(steps=[CheckResult("long", True, "x" * 10_000), CheckResult("skipped", True, "why", True)])
    path = evidence.write(tmp_path / "made" / "here")
    assert path.name == "qmail-syncdir_1.03-1+deb12_amd64.deb.lint.evidence.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    again = Evidence.loads(path.read_bytes(), str(path))
    assert again == evidence and len(again.steps[0].evidence) <= MAX_STEP_TEXT
    assert again.steps[1].word == "SKIP" and again.tool.startswith("qmail-pkg ")
    verify = made(kind="verify", qualifier="systemd-apt")
    assert verify.file_name.endswith(".deb.verify-systemd-apt.evidence.json")


def test_never_written_through_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(RecordError, match="link: not a folder"):
        made().write(tmp_path / "link")
    evidence = made()
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / evidence.file_name).symlink_to(outside / "target")
    with pytest.raises(RecordError, match="symlink"):
        evidence.write(tmp_path / "real")
    assert not list(outside.iterdir())


def _hostile(data: dict, **changes) -> dict:
    copy = json.loads(json.dumps(data))
    for key, value in changes.items():
        copy[key] = value
    return copy


@pytest.mark.parametrize("change, said", [
    ({"kind": "build"}, "kind: must be one of"),
    ({"passed": "yes"}, "passed: must be true or false"),
    ({"schema": 99}, "newer than this tool reads"),
    ({"time": "yesterday"}, "time: 'yesterday' is not a valid value"),
    ({"artifact": {"file": "../../etc/passwd", "sha256": SHA}}, "artifact.file"),
    ({"artifact": {"file": "a.deb", "sha256": "ABC"}}, "artifact.sha256"),
    ({"steps": [{"name": "x", "passed": True, "evidence": "y" * 5000}]}, "longer than 4096"),
    ({"steps": [{"name": "x", "passed": True}]}, "steps[0].evidence: missing"),
    ({"steps": [{"name": "x", "passed": True, "evidence": ""}] * 1001}, "more than 1000 steps"),
    ({"qualifier": "svscan"}, "verify evidence names its kind of host"),
    ({"surprise": 1}, "surprise: is not a field of evidence"),
    ({"power_cut": [{"filesystem": "ext4"}]}, "only power-cut evidence has it"),
])
def test_what_is_not_evidence_is_refused_with_the_field(change, said):
    data = _hostile(made().to_json(), **change)
    with pytest.raises(RecordError) as caught:
        Evidence.from_json(data, "e.json")
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_duplicate_keys_constants_and_nesting_are_refused():
    text = made().dumps()
    with pytest.raises(RecordError, match="duplicate key"):
        Evidence.loads(text.replace('"passed": true,', '"passed": true, "passed": false,', 1), "e.json")
    with pytest.raises(RecordError, match="not evidence"):
        Evidence.loads(text.replace('"schema": 1', '"schema": NaN'), "e.json")
    with pytest.raises(RecordError, match="not evidence|nested too deeply"):
        Evidence.loads("[" * 100_000 + "]" * 100_000, "e.json")
    with pytest.raises(RecordError, match="not evidence"):
        Evidence.loads(b"\xff\xfe", "e.json")


def test_power_cut_rows_are_counts():
    rows = (PowerCutCounts("ext4", "package", 2, 0, 10, 9, 1, 0, 0, 0, 0),
            PowerCutCounts("ext4", "baseline", 2, 0, 10, 2, 1, 3, 4, 0, 0))
    evidence = made(kind="power-cut", power_cut=rows)
    assert Evidence.loads(evidence.dumps(), "e.json").power_cut == rows
    data = evidence.to_json()
    data["power_cut"][0]["lost"] = -1
    with pytest.raises(RecordError, match=r"power_cut\[0\].lost"):
        Evidence.from_json(data, "e.json")
    data["power_cut"][0].update(lost=0, variant="other")
    with pytest.raises(RecordError, match="variant"):
        Evidence.from_json(data, "e.json")


def test_the_chart_is_shares_of_acknowledged_mail():
    rows = (PowerCutCounts("xfs", "package", 1, 0, 4, 3, 1, 0, 0, 0, 0),
            PowerCutCounts("xfs", "baseline", 1, 0, 8, 2, 0, 2, 4, 0, 0),
            PowerCutCounts("ext4", "package", 1, 1, 0, 0, 0, 0, 0, 0, 0))
    made_chart = chart("c", "p.deb", rows)
    xfs, ext4 = made_chart.groups
    package, baseline = xfs.bars
    assert [(s.state, s.width) for s in package.segments] == [("delivered", 450.0), ("queued", 150.0)]
    assert sum(s.width for s in baseline.segments) == pytest.approx(made_chart.bar)
    assert baseline.segments[-1].x + baseline.segments[-1].width == pytest.approx(made_chart.left + made_chart.bar)
    assert ext4.bars[0].segments == () and ext4.bars[0].words == "no acknowledged mail"
    assert "on xfs, the baseline: 8 messages acknowledged, 2 delivered, 0 queued, 2 stranded, 4 lost" in \
        made_chart.description


def test_gaps_say_what_was_not_verified():
    lint = made()
    said = gaps("freebsd", None, "", False, (lint,))
    shorts = [gap.short for gap in said]
    assert shorts[0] == "build record" and "lifecycle" in shorts and "power cuts" in shorts
    assert "lint" not in shorts
    text = " ".join(gap.text for gap in said)
    assert f"{NOT_HERE}. Its lifecycle needs a FreeBSD machine" in text and "does not apply" in text
    failed = Evidence.made("verify", Path("a.deb"), SHA, False, [CheckResult("s", True, "why", True)],
                           qualifier="svscan")
    shorts = [gap.short for gap in gaps("debian", None, "", False, (failed,))]
    assert "verify on a svscan host: FAILED" in shorts and "piuparts" in shorts and "lifecycle" not in shorts


def test_shown_text_has_no_controls_overrides_or_noncharacters():
    shown = visible("a\nb\x1b[2J\u202e\u2066\ufdd0\U0001ffff\x85")
    assert shown == "a\nb\\x1b[2J\\u202e\\u2066\\U0000fdd0\\U0001ffff\\x85"
    assert visible(7) == 7


def test_reading_is_bounded(tmp_path):
    from builder.safefs import Folder, FsError

    big = tmp_path / "big.evidence.json"
    with open(big, "wb") as out:
        out.truncate(5 << 20)
    with Folder.open(tmp_path) as folder, pytest.raises(FsError, match="more than"):
        folder.read(big.name, 4 << 20)
    os.mkfifo(tmp_path / "fifo.evidence.json")
    with Folder.open(tmp_path) as folder, pytest.raises(FsError, match="FIFO"):
        folder.read("fifo.evidence.json", 4 << 20)
