"""The repository's front page as a person and a browser see it.

A test repository of the miniature packages (deb, rpm, pkg) is published
with evidence: `qmail-pkg lint` and `qmail-pkg verify` write theirs beside
the artifacts as the commands do, a power-cut result goes through the real
writer (PowerCutReport.evidence) from a report of made-up figures (a real
run takes minutes: these are test data for the renderer, nothing measured),
and forged evidence and a forged record carry hostile strings.

Then: headless Chromium (Debian's) loads the pages from file: and over a
loopback HTTP server inside a network namespace that has nothing but
loopback, takes screenshots at desktop and phone widths and dumps the DOM;
the Nu validator (vnu-jar from npm, on Debian's Java) and tidy check the
HTML; and the accessibility basics are checked here: landmarks, headings in
order, table headers, a title and a text table for every chart, contrast.
Every tool must be there: a missing one fails the test, never skips it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from builder.cli import main
from builder.evidence import CheckResult, Evidence
from builder.recipe.loader import load_recipe
from builder.record import BuildRecord
from builder.site.chart import COLOURS
from builder.site.model import gaps
from builder.verify.powercut import Cycle, CycleResult, PowerCutOptions, PowerCutReport
from builder.verify.powercut.classify import Outcome

from .conftest import _build, artifact_of, with_patches
from .test_repo import gnupg, publish  # noqa: F401  (the module's fixture: a signing key and a pkg key)

pytestmark = pytest.mark.docker

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
BASE_URL = "https://repo.example.org/qmail"
VNU_VERSION = "26.9.27"
AXE_VERSION = "4.14.1"
PLAYWRIGHT_VERSION = "1.65.2"
SIZES = {"desktop": "1280,2000", "phone": "390,844"}


# -- the test repository ------------------------------------------------------------
def _copy_build(result, into: Path) -> Path:
    folder = into / result.record_path.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    record = result.record_path
    for path in [record, record.with_name(record.name.replace(".build.json", ".intoto.json")),
                 *(a.path for a in result.artifacts)]:
        shutil.copy(path, folder / path.name)
    return folder


def _power_cut_report(package: Path) -> PowerCutReport:
    """A report shaped as a real run's, with made-up figures (test data)."""
    options = PowerCutOptions(cycles=2, filesystems=("ext4", "ext4-nojournal"), baseline=Path("baseline.deb"))
    results = []
    figures = {("package", "ext4"): (40, 38, 2, 0, 0), ("baseline", "ext4"): (41, 30, 5, 4, 2),
               ("package", "ext4-nojournal"): (44, 40, 4, 0, 0), ("baseline", "ext4-nojournal"): (39, 6, 1, 2, 30)}
    for (variant, fs), (_acknowledged, delivered, queued, stranded, lost) in figures.items():
        for number in (1, 2):
            counts = {"delivered": delivered // 2, "queued": queued // 2, "stranded": stranded // 2,
                      "lost": lost // 2}
            outcome = Outcome(sum(counts.values()), counts, (), (), {})
            results.append(CycleResult(Cycle(variant, fs, number, number), Path("/nonexistent"), 3.0, outcome))
    return PowerCutReport("debian-12", package.name, "baseline.deb", options, results)


@pytest.fixture(scope="module")
def site(built, built_rpm, built_pkg, gnupg, tmp_path_factory):  # noqa: F811
    top = tmp_path_factory.mktemp("site")
    artifacts = top / "artifacts"
    deb_folder = _copy_build(built, artifacts)
    rpm_folder = _copy_build(built_rpm, artifacts)
    pkg_folder = _copy_build(built_pkg, artifacts)
    deb = deb_folder / artifact_of(built, "deb").name
    rpm = rpm_folder / artifact_of(built_rpm, "rpm").name
    pkg = pkg_folder / artifact_of(built_pkg, "pkg").name
    recipe_file = json.loads(built.record_path.read_text())["recipe"]["path"]
    # the real commands write their evidence beside the artifacts
    assert main(["lint", str(deb), str(rpm), str(pkg), "--recipe", recipe_file]) == 0
    assert main(["verify", str(deb), "--target", "debian-12", "--recipe", recipe_file]) == 0
    sha = {path: BuildRecord.beside(path).artifact(path.name).sha256 for path in (deb, rpm, pkg)}
    _power_cut_report(deb).evidence(deb, sha[deb]).write(deb_folder)
    # hostile text where evidence and records carry free text
    Evidence.made("verify", rpm, sha[rpm], False,
                  [CheckResult(SCRIPT, False, ATTRIBUTE + "\n\x1b[31m\u202etext\ufffe"),
                   CheckResult("the strace proof", True, "qemu-user has no ptrace", skipped=True)],
                  qualifier="svscan").write(rpm_folder)
    record = BuildRecord.read(built.record_path)
    forged = replace(record, engine=SCRIPT, image=replace(record.image, reference=ATTRIBUTE))
    (deb_folder / record.file_name).write_text(forged.dumps())
    # evidence about other bytes: left out, and said so
    Evidence.made("piuparts", pkg, "0" * 64, True, [CheckResult("forged", True, "forged")]).write(pkg_folder)
    repo = top / "repo"
    report = publish(artifacts, repo, key=str(gnupg["secret_file"]), pkg_key=gnupg["pkg_key"],
                     base_url=BASE_URL)
    pages = {path.relative_to(repo).as_posix(): path.read_text() for path in repo.rglob("*.html")}
    return {"repo": repo, "report": report, "pages": pages, "deb": deb.name, "rpm": rpm.name, "pkg": pkg.name,
            "top": top, "fingerprint": gnupg["fingerprint"]}


def page_of(site, name: str) -> str:
    return next(text for path, text in site["pages"].items() if path.endswith(f"/{name}.html"))


# -- what the pages say -------------------------------------------------------------------
def test_publish_writes_the_front_page_and_a_page_per_package(site):
    report, repo = site["report"], site["repo"]
    files = [site["deb"], site["rpm"], site["pkg"]]
    assert report.pages[-1] == "index.html" and len(report.pages) == 4
    assert sorted(site["pages"]) == sorted(["index.html", *(f"packages/{name.rsplit('.', 1)[1]}/{name}.html"
                                                            for name in files)])
    for name in files:
        fmt = name.rsplit(".", 1)[1]
        assert (repo / "records" / fmt / f"{name}.build.json").is_file()
        assert (repo / "records" / fmt / f"{name}.intoto.json").is_file()
        assert (repo / "records" / fmt / f"{name}.lint.evidence.json").is_file()
    assert (repo / "records/deb" / f"{site['deb']}.power-cut.evidence.json").is_file()
    assert (repo / "records/deb" / f"{site['deb']}.verify-svscan.evidence.json").is_file()
    assert [why for why in report.ignored if "evidence for another artifact" in why and site["pkg"] in why]
    assert not (repo / "records/pkg" / f"{site['pkg']}.piuparts.evidence.json").exists()
    index = site["pages"]["index.html"]
    for name in files:
        assert name in index
    # how to install: the README's snippets with the base URL, and the key's fingerprint
    assert f"URIs: {BASE_URL}" in index and "Signed-By: /usr/share/keyrings/qmail-pkg-archive-keyring.gpg" in index
    assert f"baseurl={BASE_URL}/rpm/el-9" in index and "repo_gpgcheck=1" in index
    assert f'url: &#34;{BASE_URL}/freebsd/${{ABI}}&#34;' in index
    fingerprint = site["fingerprint"]
    assert " ".join(fingerprint[i:i + 4] for i in range(0, 40, 4)) in index
    assert "apt update &amp;&amp; apt install qmail-syncdir" in index


def test_power_cut_chart_for_one_package_and_not_verified_here_for_the_others(site):
    deb = page_of(site, site["deb"])
    assert deb.count("<svg") == 1 and 'role="img"' in deb
    assert "What became of acknowledged mail after power cuts" in deb
    assert "<caption>Power cuts per file system" in deb
    assert re.search(r"<th scope=\"row\">ext4-nojournal</th><td>baseline</td><td>2 of 2</td><td>38</td>", deb)
    for name in (site["rpm"], site["pkg"]):
        page = page_of(site, name)
        assert "<svg" not in page
        assert "Acknowledged mail through real power cuts (qmail-pkg verify --power-cut): not verified here" in page
    pkg = page_of(site, site["pkg"])
    assert "not verified here. Its lifecycle needs a FreeBSD machine" in pkg
    assert "piuparts, Debian&#39;s own package tester, does not apply" in pkg
    index = site["pages"]["index.html"]
    assert index.count("<svg") == 1 and f"Power cuts: {site['deb']}" in index
    assert "not verified here" in index
    # what ran on the deb is shown with its steps
    assert "Verify on a svscan host: <span class=\"badge pass\">PASS</span>" in deb
    assert "syncdir: strace shows a directory fsync after every queue link/unlink" in deb


def test_hostile_strings_are_escaped_text(site):
    for path, text in site["pages"].items():
        assert SCRIPT not in text and "<img" not in text and "<script" not in text, path
    rpm, deb = page_of(site, site["rpm"]), page_of(site, site["deb"])
    assert html.escape(SCRIPT, quote=False) in rpm
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in rpm
    assert "\\x1b[31m\\u202etext\\U0000fffe" in rpm  # controls and overrides shown as escapes
    assert html.escape(SCRIPT, quote=False) in deb and "&#34;&gt;&lt;img src=x" in deb  # from the forged record
    assert "Verify on a svscan host: the strace proof: not run there (qemu-user has no ptrace)." in rpm
    assert "Verify on a svscan host: FAILED; see its steps." in rpm


def test_every_link_stays_in_the_tree_and_nothing_is_loaded(site):
    repo = site["repo"]
    for path, text in site["pages"].items():
        parser = Elements()
        parser.feed(text)
        assert not [tag for tag, _ in parser.elements if tag in ("script", "link", "img", "iframe", "object")], path
        assert "default-src 'none'" in text and "script-src" not in text
        for tag, attributes in parser.elements:
            assert "style" not in attributes and not any(name.startswith("on") for name in attributes), (path, tag)
            target = attributes.get("href")
            if target is None:
                continue
            assert "://" not in target and not target.startswith("/"), (path, target)
            link = target.split("#")[0]
            if link:
                resolved = (repo / path).parent / urllib.parse.unquote(link)
                assert resolved.resolve().is_relative_to(repo.resolve()) and resolved.is_file(), (path, target)


# -- accessibility ----------------------------------------------------------------------
class Elements(HTMLParser):
    """Start tags in order with their attributes, and the text of headings."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.texts: dict[int, str] = {}

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.elements:
            index = len(self.elements) - 1
            self.texts[index] = self.texts.get(index, "") + data


def contrast(foreground: str, background: str) -> float:
    def luminance(colour: str) -> float:
        value = colour.lstrip("#")
        channels = [int(value[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_landmarks_headings_tables_charts(site):
    for path, text in site["pages"].items():
        parser = Elements()
        parser.feed(text)
        tags = [tag for tag, _ in parser.elements]
        assert parser.elements[0] == ("html", {"lang": "en"}), path
        for landmark in ("header", "nav", "main", "footer"):
            assert tags.count(landmark) == 1, (path, landmark)
        levels = [int(tag[1]) for tag in tags if re.fullmatch(r"h[1-6]", tag)]
        assert levels[0] == 1 and levels.count(1) == 1, path
        assert all(after <= before + 1 for before, after in zip(levels, levels[1:], strict=False)), (path, levels)
        for index, (tag, attributes) in enumerate(parser.elements):
            if tag == "th":
                assert attributes.get("scope") in ("col", "row"), path
            if tag == "table":
                rest = tags[index + 1:]
                assert "th" in rest[:rest.index("table")] if "table" in rest else "th" in rest, path
            if tag == "svg":
                assert attributes.get("role") == "img", path
                assert tags[index + 1] == "title" and parser.texts[index + 1].strip(), path
                labelled = attributes["aria-labelledby"].split()
                assert all(f'id="{ident}"' in text for ident in labelled), path
                assert "table" in tags[index:], path  # the same figures as text follow the picture
        assert 'name="viewport"' in text


def test_stylesheet_colours_have_enough_contrast():
    css = (Path(__file__).resolve().parents[1] / "builder/site/templates/style.css").read_text()
    page = "#ffffff"
    checked = 0
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        colour = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", body)
        if not colour:
            continue
        background = re.search(r"background:\s*(#[0-9a-fA-F]{6})", body)
        ratio = contrast(colour.group(1), background.group(1) if background else page)
        assert ratio >= 4.5, (selector.strip(), ratio)
        checked += 1
    assert checked >= 8

    for state, colour in COLOURS.items():  # graphical objects against the page: 3:1
        assert contrast(colour, page) >= 3, state
    assert contrast("#1b1f24", page) >= 4.5  # the chart's text


# -- the validators -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def npm_tools():
    """vnu-jar, axe-core and playwright-core from npm, installed once into the user's cache."""
    for tool in ("npm", "node", "java"):
        assert shutil.which(tool), f"{tool} is needed (./run.sh setup installs npm and default-jre-headless)"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache = (Path(xdg) if xdg.startswith("/") else Path.home() / ".cache") / "qmail-pkg" / "npm"
    wanted = {"vnu-jar": VNU_VERSION, "axe-core": AXE_VERSION, "playwright-core": PLAYWRIGHT_VERSION}
    installed = {name: json.loads(path.read_text())["version"] for name in wanted
                 if (path := cache / "node_modules" / name / "package.json").is_file()}
    if installed != wanted:
        cache.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund",
                                 *(f"{name}@{version}" for name, version in wanted.items())],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    return cache / "node_modules"


def test_the_nu_validator_and_tidy_find_no_error(site, npm_tools):
    pages = sorted(site["repo"].rglob("*.html"))
    vnu = npm_tools / "vnu-jar/build/dist/vnu.jar"
    result = subprocess.run(["java", "-jar", str(vnu), "--errors-only", *map(str, pages)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert shutil.which("tidy"), "tidy is needed (apt-get install tidy, or ./run.sh setup)"
    for page in pages:
        result = subprocess.run(["tidy", "-errors", "-quiet", str(page)], capture_output=True, text=True)
        assert result.returncode < 2, (page, result.stderr[-2000:])


def test_axe_finds_no_violation_at_desktop_and_phone_widths(site, npm_tools):
    """axe-core's WCAG 2.1 A/AA and best-practice rules, in Debian's Chromium
    (driven by playwright-core) with no network but loopback."""
    assert shutil.which("chromium"), "chromium is needed (apt-get install chromium, or ./run.sh setup)"
    pages = [page.as_uri() for page in sorted(site["repo"].rglob("*.html"))]
    script = Path(__file__).with_name("axe-check.js")
    result = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec node "$@"', "sh", str(script),
                             *pages], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NODE_PATH": str(npm_tools)})
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == 2 * len(pages), result.stderr[-2000:]
    assert result.returncode == 0 and not [r for r in reports if r["violations"]], result.stdout[-4000:]


# -- a browser with no network ------------------------------------------------------------
def chromium(site, url: str, *options: str, serve: bool = False) -> subprocess.CompletedProcess:
    """Debian's headless Chromium in a new network namespace that has only
    loopback; with `serve`, python's http.server serves the tree there too."""
    assert shutil.which("chromium"), "chromium is needed (apt-get install chromium, or ./run.sh setup)"
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=site["top"]))
    server = ""
    if serve:
        server = (f"{sys.executable} -m http.server 8000 --bind 127.0.0.1 --directory {site['repo']} "
                  ">/dev/null 2>&1 & served=$!\n"
                  f"for i in $(seq 100); do {sys.executable} -c 'import socket; "
                  "socket.create_connection((\"127.0.0.1\", 8000))' 2>/dev/null && break; sleep 0.1; done\n")
    script = ("ip link set lo up\n"
              "test \"$(ip -o link | wc -l)\" = 1 || { echo 'more than loopback' >&2; exit 99; }\n"
              f"{server}"
              "chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking "
              f"--disable-component-update --disable-sync --user-data-dir={profile} \"$@\"\n"
              "code=$?\n"
              "[ -z \"${served:-}\" ] || kill $served\n"
              "exit $code\n")
    return subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", *options, url], capture_output=True,
                          text=True, timeout=120)


def distinct_colours(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24) or ())


@pytest.mark.parametrize("how", ["file", "http"])
def test_chromium_shows_every_package_offline(site, how):
    repo, shots = site["repo"], site["top"] / "shots"
    shots.mkdir(exist_ok=True)
    serve = how == "http"
    for page in ("index.html", f"packages/deb/{site['deb']}.html"):
        url = (repo / page).as_uri() if how == "file" else f"http://127.0.0.1:8000/{page}"
        dom = chromium(site, url, "--dump-dom", serve=serve)
        assert dom.returncode == 0 and "</html>" in dom.stdout, dom.stderr[-2000:]
        assert "<script" not in dom.stdout and "<img" not in dom.stdout
        if page == "index.html":
            for name in (site["deb"], site["rpm"], site["pkg"]):
                assert name in dom.stdout, name
        for size, window in SIZES.items():
            shot = shots / f"{how}-{size}-{page.replace('/', '_')}.png"
            result = chromium(site, url, f"--screenshot={shot}", f"--window-size={window}", "--hide-scrollbars",
                              serve=serve)
            assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
            assert distinct_colours(shot) > 20, shot  # not blank: text, links, badges
    keep = os.environ.get("QMAIL_PKG_SITE_SHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)


# -- evidence as hostile input, and the site over several publishes ---------------------------
def _publish_cli(artifacts: Path, repo: Path, gnupg, *more: str) -> list[str]:  # noqa: F811
    recipe = json.loads(next(artifacts.glob("*/*.build.json")).read_text())["recipe"]["path"]
    return ["repo", "publish", str(artifacts), "--repo", str(repo), "--key", str(gnupg["secret_file"]),
            "--recipe", recipe, *more]


def test_malformed_evidence_is_refused_before_anything_is_written(built, gnupg, tmp_path, capsys):  # noqa: F811
    artifacts = tmp_path / "artifacts"
    folder = _copy_build(built, artifacts)
    deb = folder / artifact_of(built, "deb").name
    repo = tmp_path / "repo"
    argv = _publish_cli(artifacts, repo, gnupg)
    sha = BuildRecord.beside(deb).artifact(deb.name).sha256
    good = Evidence.made("lint", deb, sha, True, [CheckResult("lintian", True, "clean")])
    for name, content, said in [
        (good.file_name, good.dumps().replace('"passed": true', '"passed": "yes"', 1), "passed: must be true or false"),
        (good.file_name, good.dumps()[:-3], "not evidence (not JSON"),
        (f"{deb.name}.piuparts.evidence.json", good.dumps(), "its name is not the one its contents give"),
    ]:
        path = folder / name
        path.write_text(content)
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err
        assert not repo.exists()
        path.unlink()
    (folder / good.file_name).symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text(good.dumps())
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "a symlink, which is never followed here" in err and not repo.exists()


def test_later_publishes_keep_earlier_versions_and_prune_sweeps_them(built, built_next, gnupg,  # noqa: F811
                                                                    tmp_path, capsys):
    repo = tmp_path / "repo"
    first = _copy_build(built, tmp_path / "one")
    old = artifact_of(built, "deb").name
    evidence_dir = tmp_path / "evidence"
    # --evidence DIR: written there, not beside the package; publish reads what is beside it
    assert main(["lint", str(first / old), "--evidence", str(evidence_dir)]) == 0
    assert [p.name for p in evidence_dir.iterdir()] == [f"{old}.lint.evidence.json"]
    assert not list(first.glob("*.evidence.json"))
    shutil.copy(evidence_dir / f"{old}.lint.evidence.json", first)
    assert main(_publish_cli(tmp_path / "one", repo, gnupg)) == 0
    capsys.readouterr()
    _copy_build(built_next, tmp_path / "two")
    new = artifact_of(built_next, "deb").name
    assert main(_publish_cli(tmp_path / "two", repo, gnupg)) == 0
    assert "wrote      index.html and 2 package page(s)" in capsys.readouterr().out
    index = (repo / "index.html").read_text()
    assert old in index and new in index
    old_page = (repo / "packages/deb" / f"{old}.html").read_text()
    assert "Lint (the format&#39;s linter): <span class=\"badge pass\">PASS</span>" in old_page
    # a copy in the tree that no longer reads back is said on the page; the publish goes on
    (repo / "records/deb" / f"{old}.build.json").write_text('{"schema": 1, "schema": 2}')
    assert main(_publish_cli(tmp_path / "two", repo, gnupg)) == 0
    old_page = (repo / "packages/deb" / f"{old}.html").read_text()
    assert "The copy of its build record in this tree cannot be read" in old_page and "duplicate key" in old_page
    assert main(_publish_cli(tmp_path / "two", repo, gnupg, "--prune", "1")) == 0
    assert old not in (repo / "index.html").read_text()
    assert not (repo / "packages/deb" / f"{old}.html").exists()
    assert not list((repo / "records/deb").glob(f"{old}.*"))
    assert (repo / "packages/deb" / f"{new}.html").is_file()


def test_a_hostile_package_summary_is_shown_as_text(miniature, tmp_path, gnupg):  # noqa: F811
    """The package's own description is on its page: a recipe whose summary
    is markup makes a package that says so, and the page shows the text."""
    folder = with_patches(tmp_path / "recipe")
    recipe_path = folder / "hostile.yaml"
    recipe_path.write_text(miniature[0].read_text().replace(
        "summary: qmail 1.03 MTA relinked with syncdir", f"summary: 'qmail {SCRIPT} {ATTRIBUTE}'", 1))
    recipe = load_recipe(recipe_path)
    assert SCRIPT in recipe.package.summary
    result = _build(recipe, miniature[1], tmp_path / "dist", revision=1)
    repo = tmp_path / "repo"
    publish(tmp_path / "dist", repo, key=str(gnupg["secret_file"]))
    page = (repo / "packages/deb" / f"{artifact_of(result, 'deb').name}.html").read_text()
    assert f"<p class=\"lead\">{escape(recipe.package.summary)}</p>" in page
    assert "<script" not in page and "<img" not in page


def test_piuparts_is_no_gap_of_an_rpm_or_pkg_only_a_note_on_its_page():
    """The index's "not verified" column lists what was not done, not what
    does not apply: piuparts tests .deb packages only."""
    for family, applies in (("debian", True), ("rhel", False), ("freebsd", False)):
        (piuparts,) = [gap for gap in gaps(family, None, "", False, ()) if gap.short == "piuparts"]
        assert piuparts.applies is applies, family
