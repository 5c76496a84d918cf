"""Does `refsift mix` find a better mixture than the obvious ones? A search over six bundled
domains for a target that blends two of them (code and math, so that the answer is not a
corner), then the proposed mixture against natural, uniform and a hand-typed mixture over
`--seeds` seeds with `refsift ablate`, and how much of the search `--resume` repeats after
a kill.

    python benchmarks/mix.py [--proxies 24] [--tokens 100000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402

from refsift import cli  # noqa: E402
from refsift.reports.mix import fit_said  # noqa: E402

HAND = "code=0.5,math=0.5"  # what a person would type for a code-and-math target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--proxies", type=int, default=24)
    p.add_argument("--tokens", type=int, default=100_000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--proxy", default="2x128")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs, target, tok = common.mixing_case(tmp)
        proxies = ["--tokenizer", tok, "--proxy", args.proxy, "--tokens", str(args.tokens), "--max-length", "256",
                  "--context", "32"]  # fmt: skip
        search = ["mix", "--input", *inputs, "--target", target, *proxies,
                  "--proxies", str(args.proxies), "--validate-seeds", "3", "--out"]  # fmt: skip
        started = time.time()
        assert cli.main([*search, str(tmp / "mix")]) == 0
        search_s = time.time() - started
        record = json.loads((tmp / "mix" / "mixture.json").read_text())

        # a search killed with half its proxies committed: --resume trains the other half only
        half = tmp / "half"
        shutil.copytree(tmp / "mix", half, ignore=shutil.ignore_patterns(".lock"))
        done = sorted((half / "_done").glob("*.json"))
        for lost in done[::2]:
            lost.unlink()
        (half / ".refsift").write_text(json.dumps({"kind": "mixture", "status": "running"}))
        started = time.time()
        assert cli.main([*search, str(half), "--resume"]) == 0
        resume_s = time.time() - started

        arms = {"proposed": record["mix"], "natural": "natural", "uniform": "uniform", "hand": HAND}
        argv = ["ablate", *(a for name, w in arms.items() for a in ("--arm", f"{name}={w}")), "--input", *inputs,
                "--eval", target, *proxies, "--seeds", str(args.seeds),
                "--out", str(tmp / "ab")]  # fmt: skip
        assert cli.main(argv) == 0
        report = json.loads((tmp / "ab" / "report.json").read_text())

    fit = record["fit"]
    print(f"\nsearch: {args.proxies} proxies ({args.proxy}, {args.tokens:,} tokens each) in {search_s:.0f} s")
    print(f"fit: {fit_said(fit)}")
    print("proposed: " + ", ".join(f"{s} {w:.2f}" for s, w in record["weights"].items()))
    print("natural:  " + ", ".join(f"{s} {w:.2f}" for s, w in record["natural"].items()))
    print(f"resume after losing {len(done[::2])} of {len(done)} committed proxies: {resume_s:.0f} s "
          f"({resume_s / search_s:.0%} of the search)")  # fmt: skip
    print(f"\n{args.seeds} seeds: target loss, proposed against each")
    for c in report["comparisons"]:
        if c["a"] == "proposed":
            print(f"  vs {c['b']:<8} {c['difference']:+.4f} (90% interval {c['low']:+.4f} .. {c['high']:+.4f}), "
                  f"proposed lower in {c['wins']}/{c['seeds']} seeds: {c['verdict']}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
