"""Build overhead of qmail-pkg against the same steps run by hand.

Runs, in the same build image:
  1. by hand: one `docker run --network none` with the sources copied in and
     the plan's steps (accounts, recipe steps) concatenated into one script;
  2. `qmail-pkg build` of the same target and sources (sandbox, harvest, nfpm).
and prints the wall-time ratio, plus the package's compression ratio
(installed bytes / .deb bytes). Uses the built-in miniature sources unless
--source NAME=PATH is given (e.g. real qmail and syncdir trees).

    python benchmarks/build_overhead.py [--target debian-12] [--source qmail=DIR --source syncdir=DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.fixtures import write_sources  # noqa: E402
from builder.pipeline import BuildOptions, build_target  # noqa: E402
from builder.plan import SOURCES_IN_SANDBOX, make_plan  # noqa: E402
from builder.recipe import load_recipe  # noqa: E402
from builder.sandbox.images import ensure_image, image_spec  # noqa: E402
from builder.sources import prepare  # noqa: E402


def by_hand(plan, image: str, work: Path) -> float:
    lines = ["set -eu"]
    for name, value in plan.env:
        lines.append(f"export {name}={shlex.quote(value)}")
    for source in plan.sources:
        lines.append(f"mkdir -p {SOURCES_IN_SANDBOX}/{source.name} && cp -a /in/{source.name}/. {SOURCES_IN_SANDBOX}/{source.name}/")
    lines.append("cd /build")
    for step in plan.steps:
        lines.append(shlex.join(step.argv) + " >/dev/null 2>&1")
    mounts = []
    for source in plan.sources:
        mounts += ["-v", f"{source.tree}:/in/{source.name}:ro"]
    started = time.monotonic()
    subprocess.run(["docker", "run", "--rm", "--network", "none", *mounts, image, "sh", "-c", "\n".join(lines)], check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="debian-12")
    parser.add_argument("--source", action="append", default=[])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    recipe = load_recipe(ROOT / "recipes" / "qmail-syncdir.yaml")
    target = recipe.target(args.target)
    image = image_spec(target, "build").reference
    ensure_image(image_spec(target, "build"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        overrides = dict(item.split("=", 1) for item in args.source) or {k: str(v) for k, v in write_sources(work / "fx").items()}
        overrides = {name: Path(path) for name, path in overrides.items()}
        sources = tuple(
            prepare(s, work / "cache", work / "prep", overrides.get(s.name)) for s in recipe.sources
        )
        plan = make_plan(recipe, target, sources)
        hand, tool, sizes = [], [], None
        for run in range(args.runs):
            hand.append(by_hand(plan, image, work))
            started = time.monotonic()
            result = build_target(
                recipe, target,
                BuildOptions(out_dir=work / f"dist{run}", sources_dir=work / "cache", overrides=tuple(overrides.items()), quiet=True),
            )
            tool.append(time.monotonic() - started)
            deb = result.artifacts[0].path
            installed = sum(p.stat().st_size for p in (work / "prep").rglob("*") if p.is_file())
            sizes = (deb.stat().st_size, installed)
    h, t = statistics.median(hand), statistics.median(tool)
    print(f"target {args.target}, {args.runs} runs, sources: {'given' if args.source else 'built-in miniature'}")
    print(f"by hand (same image, same steps): median {h:.2f} s")
    print(f"qmail-pkg build:                  median {t:.2f} s")
    print(f"overhead ratio qmail-pkg / by hand: {t / h:.2f}")
    if sizes:
        print(f"source bytes / .deb bytes: {sizes[1] / sizes[0]:.2f} ({sizes[0]} byte .deb)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
