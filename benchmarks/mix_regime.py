"""Where does a mixture's effect stand above the seed's? `refsift mix` on benchmarks/mix.py's
case at several token budgets: how far apart the searched mixtures' target losses are (their
standard deviation), how much one mixture moves between seeds (natural's standard deviation
over the validation seeds), their ratio, and how well the fit ranks held-out mixtures.

    python benchmarks/mix_regime.py [--tokens 25000,50000,100000] [--proxies 24]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402

from refsift import cli  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", default="25000,50000,100000")
    p.add_argument("--proxies", type=int, default=24)
    p.add_argument("--proxy", default="2x128")
    args = p.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs, target, tok = common.mixing_case(tmp)
        for tokens in map(int, args.tokens.split(",")):
            out = tmp / f"mix-{tokens}"
            started = time.time()
            assert cli.main(["mix", "--input", *inputs, "--target",
                             target, "--tokenizer", tok, "--proxy", args.proxy, "--tokens",
                             str(tokens), "--proxies", str(args.proxies), "--validate-seeds", "3", "--max-length",
                             "256", "--context", "32", "--out", str(out)]) == 0  # fmt: skip
            record = json.loads((out / "mixture.json").read_text())
            spread = statistics.stdev(s["loss"] for s in record["searched"])
            noise = statistics.stdev(record["validation"]["natural"])
            versus = next(c for c in record["comparisons"] if c["b"] == "natural")
            rows.append((tokens, time.time() - started, spread, noise, record["fit"], versus))

    print(f"\n{args.proxies} proxies ({args.proxy}) per search; seed noise over 3 validation seeds of natural")
    print(f"{'tokens':>8} {'seconds':>8} {'mixtures sd':>12} {'seed sd':>8} {'ratio':>6} {'loo':>6} {'held-out':>9} "
          f"{'proposed - natural':>20}")  # fmt: skip
    for tokens, seconds, spread, noise, fit, versus in rows:
        print(f"{tokens:>8,} {seconds:>8.0f} {spread:>12.4f} {noise:>8.4f} {spread / noise:>6.1f} "
              f"{fit['loo_spearman']:>6.2f} {fit['heldout_spearman']:>9.2f} {versus['difference']:>+11.4f} "
              f"({versus['wins']}/{versus['seeds']})")  # fmt: skip


if __name__ == "__main__":
    main()
