"""qmail-pkg's speed, as ratios, in one run:

  (a) the hand-run steps (one `docker run` in the same image, the same
      sources and steps) vs `qmail-pkg build` of one target     goal <= 1.15x
  (b) cold (empty build cache) vs warm (cache filled, the key changed by
      --revision) vs unchanged rebuild (same key)              goal unchanged < 1 s
  (c) one target vs the whole buildable matrix with --jobs
  (d) packaging alone (staged tree -> .deb, .rpm, .pkg) vs nfpm run
      directly on the same configuration                      goal < 0.5 s for all formats
  (e) a cross build of FreeBSD and of EL (Zig) vs the native
      debian-12 build of the same sources                     goal <= 1.5x each
  (f) debian-12 arm64 cross-compiled (Debian's cross gcc) vs
      built natively under qemu-user emulation                goal <= 30 s and >= 4x faster

It uses the built-in miniature sources, or the real ones with
--source qmail=PATH --source syncdir=PATH (tarballs or folders).

    python benchmarks/bench.py [--target debian-12] [--runs 3] [--source NAME=PATH ...] [--parts a,b,c,d,e,f]
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.environment import prepare_environment  # noqa: E402
from builder.fixtures import write_sources  # noqa: E402
from builder.package import PACKAGERS, PackageSpec  # noqa: E402
from builder.package.nfpm import nfpm_binary  # noqa: E402
from builder.pipeline import BuildOptions, build_target  # noqa: E402
from builder.plan import SOURCES_IN_SANDBOX, make_plan  # noqa: E402
from builder.platforms import platform_for  # noqa: E402
from builder.recipe.loader import load_recipe  # noqa: E402
from builder.sources import prepare  # noqa: E402
from builder.staged import ContentStore, Entry, StagedTree  # noqa: E402

# Every target builds on a Linux Docker host: Debian natively, EL and FreeBSD cross-compiled.
BUILDABLE = ("debian-11", "debian-12", "debian-13", "el-8", "el-9", "el-10", "freebsd-14", "freebsd-15")
CROSS_AGAINST_NATIVE = ("freebsd-14", "el-9")  # (e): one of each cross-compiled family
PARTS = "abcdef"


def timed(function) -> tuple[float, object]:
    started = time.monotonic()
    value = function()
    return time.monotonic() - started, value


def median(function, runs: int) -> float:
    return statistics.median(timed(function)[0] for _ in range(runs))


def by_hand(recipe, target, overrides: dict[str, Path], work: Path) -> float:
    """The plan's steps, as one shell script in one `docker run`."""
    sources = tuple(prepare(s, work / "cache", work / f"hand-{time.monotonic_ns()}", overrides.get(s.name))
                    for s in recipe.sources)
    plan = make_plan(recipe, target, sources)
    image = prepare_environment(target, "build").reference
    lines = ["set -eu"] + [f"export {name}={shlex.quote(value)}" for name, value in plan.env]
    lines += [f"mkdir -p {SOURCES_IN_SANDBOX}/{s.name} && cp -a /in/{s.name}/. {SOURCES_IN_SANDBOX}/{s.name}/"
              for s in plan.sources]
    lines += ["cd /build"] + [shlex.join(step.argv) + " >/dev/null 2>&1" for step in plan.steps]
    mounts = [arg for s in plan.sources for arg in ("-v", f"{s.tree}:/in/{s.name}:ro")]
    seconds, _ = timed(lambda: subprocess.run(["docker", "run", "--rm", "--network", "none", *mounts, image, "sh", "-c",
                                               "\n".join(lines)], check=True, capture_output=True))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="debian-12")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--parts", default=",".join(PARTS), help="which figures, e.g. e,f (default: all)")
    args = parser.parse_args()
    parts = set(args.parts.replace(",", ""))
    if not parts <= set(PARTS):
        parser.error(f"--parts: letters among {','.join(PARTS)}")
    recipe = load_recipe(ROOT / "recipes" / "qmail-syncdir.yaml")
    target = recipe.target(args.target)
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-bench-") as scratch:
        work = Path(scratch)
        overrides = {name: Path(path).resolve() for name, path in (s.split("=", 1) for s in args.source)}
        if not overrides:
            overrides = write_sources(work / "miniature")
        label = "real sources" if args.source else "the miniature sources"
        base = BuildOptions(out_dir=work / "dist", sources_dir=work / "cache", overrides=tuple(overrides.items()),
                            quiet=True, cache_dir=work / "build-cache")

        def build(target=target, **changes):
            return build_target(recipe, target, replace(base, out_dir=work / f"dist-{time.monotonic_ns()}", **changes))

        build(use_cache=False)  # images present, page cache warm: every figure below starts equal
        print(f"qmail-pkg benchmark: target {target.name}, {label}, median of {args.runs}, {os.cpu_count()} cores\n")

        if "a" in parts:
            part_a(recipe, target, overrides, work, build, args.runs)
        if "b" in parts:
            part_b(work, build, args.runs)
        if "c" in parts:
            part_c(recipe, overrides, work, build, args.runs)
        if "d" in parts:
            part_d(recipe, target, work, build, args.runs)
        if "e" in parts:
            part_e(recipe, build, args.runs)
        if "f" in parts:
            part_f(recipe, build, args.runs)
    return 0


def part_a(recipe, target, overrides, work, build, runs) -> None:
    hand = statistics.median(by_hand(recipe, target, overrides, work) for _ in range(runs))
    tool = median(lambda: build(use_cache=False), runs)
    ratio = tool / hand
    print("(a) hand-run steps vs qmail-pkg build")
    print(f"    by hand {hand:6.2f} s   qmail-pkg {tool:6.2f} s   ratio {ratio:.2f}x   goal <= 1.15x: "
          f"{'met' if ratio <= 1.15 else 'NOT met'}\n")


def part_b(work, build, runs) -> None:
    revision = [100]

    def fresh_key():
        revision[0] += 1
        return build(revision=revision[0])

    cold = median(lambda: build(cache_dir=work / f"cold-{time.monotonic_ns()}"), runs)
    warm = median(fresh_key, runs)
    build()  # fill the cache for this key
    unchanged = median(build, runs)
    print("(b) cold vs warm vs unchanged rebuild")
    print(f"    cold {cold:6.2f} s   warm {warm:6.2f} s   unchanged {unchanged:6.3f} s   "
          f"cold/unchanged {cold / unchanged:.0f}x   goal unchanged < 1 s: {'met' if unchanged < 1 else 'NOT met'}\n")


def part_c(recipe, overrides, work, build, runs) -> None:
    targets = [recipe.target(name) for name in BUILDABLE]
    for matrix_target in targets:  # images first: bootstrapping is not building
        prepare_environment(matrix_target.for_architecture(matrix_target.architectures[0]), "build")
    jobs = os.cpu_count() or 1
    one = median(lambda: build(use_cache=False), runs)
    command = [sys.executable, "-m", "builder.cli", "build", str(recipe.path),
               *[a for t in targets for a in ("--target", t.name)], "--jobs", str(jobs), "--no-cache", "--json"]
    command += [a for name, path in overrides.items() for a in ("--source", f"{name}={path}")]

    def matrix():
        subprocess.run(command + ["--out", str(work / f"matrix-{time.monotonic_ns()}")], check=True,
                       capture_output=True, cwd=ROOT, env={**os.environ, "QMAIL_PKG_CACHE": str(work / "mc")})

    whole = median(matrix, runs)
    print(f"(c) one target vs the matrix ({len(targets)} targets, --jobs {jobs})")
    print(f"    one {one:6.2f} s   matrix {whole:6.2f} s   ratio {whole / one:.2f}x "
          f"(one after another would be about {len(targets):.0f}x)\n")


def part_d(recipe, target, work, build, runs) -> None:
    print("(d) packaging alone: the staged tree of the built .deb -> .deb, .rpm and .pkg, vs nfpm run directly")
    deb = next(a.path for a in build(use_cache=False).artifacts if a.format == "deb")
    tree = staged_tree_from_deb(deb, work / "store")
    total = 0.0
    for fmt in ("deb", "rpm", "pkg"):
        packager = PACKAGERS[fmt]
        spec = spec_for(recipe, target, packager, tree)
        folder = work / f"pack-{fmt}"
        folder.mkdir()

        def pack(folder=folder, packager=packager, spec=spec):  # this pass's, bound now
            out = folder / f"out-{time.monotonic_ns()}"
            out.mkdir()
            packager.build(spec, out, out)
            return out

        seconds = median(pack, runs)
        total += seconds
        configs = sorted(folder.glob("out-*/nfpm-*.yaml"))
        if configs:
            def direct_run(config=configs[-1], fmt=fmt, folder=folder):  # this pass's, bound now
                return subprocess.run([nfpm_binary(), "package", "-f", str(config), "-p", fmt,
                                      "-t", str(folder / f"direct.{fmt}")], check=True, capture_output=True)

            direct = median(direct_run, runs)
            print(f"    {fmt}: {seconds:.3f} s   nfpm alone {direct:.3f} s   ratio {seconds / direct:.2f}x")
        else:
            print(f"    {fmt}: {seconds:.3f} s   (written here, no nfpm)")
    print(f"    all formats {total:.3f} s   goal < 0.5 s: {'met' if total < 0.5 else 'NOT met'}\n")


def part_e(recipe, build, runs) -> None:
    """Cross-compiling another family costs about what building Debian
    natively does: the same make, one more brand or strip pass."""
    native = recipe.target("debian-12")
    prepare_environment(native, "build")
    baseline = median(lambda: build(target=native, use_cache=False), runs)
    print("(e) cross builds (Zig) vs the native debian-12 build")
    print(f"    debian-12 native {baseline:6.2f} s")
    for name in CROSS_AGAINST_NATIVE:
        target = recipe.target(name).for_architecture("amd64")
        prepare_environment(target, "build")
        seconds = median(lambda target=target: build(target=target, use_cache=False), runs)
        ratio = seconds / baseline
        print(f"    {name} {target.method:6} {seconds:6.2f} s   ratio {ratio:.2f}x   goal <= 1.5x: "
              f"{'met' if ratio <= 1.5 else 'NOT met'}")
    print()


def part_f(recipe, build, runs) -> None:
    """arm64 from Debian's cross gcc against the same build under qemu-user."""
    arm64 = recipe.target("debian-12").for_architecture("arm64")
    cross, emulated = arm64.with_method("cross"), arm64.with_method("native")
    for target in (cross, emulated):
        prepare_environment(target, "build")
    crossed = median(lambda: build(target=cross, use_cache=False), runs)
    slow = median(lambda: build(target=emulated, use_cache=False), runs)
    speedup = slow / crossed
    met = crossed <= 30 and speedup >= 4
    print("(f) debian-12 arm64: cross-compiled vs built under qemu-user emulation")
    print(f"    cross {crossed:6.2f} s   emulated {slow:6.2f} s   {speedup:.1f}x faster   "
          f"goal <= 30 s and >= 4x: {'met' if met else 'NOT met'}\n")


def staged_tree_from_deb(deb: Path, store_root: Path):
    """The files of a built .deb as a staged tree (owners and modes from its tar)."""
    store = ContentStore(store_root)
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    entries = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            path = "/" + member.name.lstrip("./").rstrip("/")
            if path == "/" or path.startswith(("/usr/share/doc/", "/usr/share/lintian/")):
                continue  # each packager adds its own documentation and lintian files
            mode = member.mode & 0o7777
            if member.isdir():
                entries.append(Entry(path, "dir", mode, member.uname, member.gname))
            elif member.issym():
                entries.append(Entry(path, "symlink", 0o777, member.uname, member.gname, member.linkname))
            elif member.isfile():
                digest, size = store.put_bytes(tar.extractfile(member).read())
                entries.append(Entry(path, "file", mode, member.uname, member.gname, sha256=digest, size=size))
    return StagedTree(store, tuple(sorted(entries, key=lambda e: e.path)))


def spec_for(recipe, target, packager, tree):
    shared = tuple(e.path for e in tree.entries if e.kind == "dir" and not e.path.startswith(recipe.layout.prefix)
                   and not e.path.startswith(f"{platform_for(packager.family).doc_root}/{recipe.package.name}"))
    return PackageSpec(meta=recipe.package, revision=1,
                       version_suffix=platform_for(packager.family).version_suffix(target), architecture="amd64",
                       release=target.release, description=recipe.package.summary + "\n" +
                       recipe.package.description, tree=tree, shipped=tree.entries, conffiles=(), scripts=(),
                       source_date_epoch=315532800, options=recipe.options.get(packager.options_key),
                       shared_dirs=shared, install_prefix=recipe.layout.prefix)


if __name__ == "__main__":
    sys.exit(main())
