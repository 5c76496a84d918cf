"""Where does a mixture's effect stand above the seed's? `refsift mix` on benchmarks/mix.py's
case, one search per setting, each changing one thing from a base: the token budget, the
learning rate, the schedule, common random numbers (one initialisation and data order for
every searched proxy) on or off, and the number of proxies.

Per search: how far apart the searched mixtures' target losses are (their standard
deviation), how much one mixture moves between seeds (natural's standard deviation over the
validation seeds), their ratio, the fit's leave-one-out and held-out Spearman, and the
proposed mixture against natural over the validation seeds. Without common random numbers
the searched losses carry each proxy's seed too, so their spread is not the mixtures' alone:
read the held-out Spearman there.

    python benchmarks/mix_regime.py                      # the other settings at 50,000 tokens: ~10 min
    python benchmarks/mix_regime.py --vary tokens        # 25,000 / 50,000 / 100,000 tokens
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

AXES = {
    "tokens": [("25,000 tokens", ["--tokens", "25000"]), ("50,000 tokens", ["--tokens", "50000"]),
               ("100,000 tokens", ["--tokens", "100000"])],
    "lr": [("lr 5e-4", ["--lr", "5e-4"]), ("lr 6e-3", ["--lr", "6e-3"])],
    "schedule": [("constant schedule", ["--schedule", "constant"])],
    "crn": [("no shared seed", ["--no-shared-seed"])],
    "proxies": [("12 proxies", ["--proxies", "12"]), ("48 proxies", ["--proxies", "48"])],
}  # fmt: skip


def rho(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"  # none: too few mixtures to rank


def search(inputs, target, tok, out: Path, args, extra: list[str]) -> dict:
    started = time.time()
    argv = ["mix", "--input", *inputs, "--target", target, "--tokenizer", tok, "--proxy", args.proxy,
            "--tokens", str(args.tokens), "--proxies", str(args.proxies), "--validate-seeds", str(args.seeds),
            "--max-length", "256", "--context", "32", "--out", str(out), *extra]  # fmt: skip
    assert cli.main(argv) == 0
    record = json.loads((out / "mixture.json").read_text())
    versus = next(c for c in record["comparisons"] if c["b"] == "natural")
    spread = statistics.stdev(s["loss"] for s in record["searched"])
    noise = statistics.stdev(record["validation"]["natural"])
    return {"seconds": time.time() - started, "spread": spread, "noise": noise, "fit": record["fit"],
            "versus": versus, "heldout": sum(s["heldout"] for s in record["searched"])}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vary", nargs="+", default=["lr", "schedule", "crn", "proxies"], choices=list(AXES))
    p.add_argument("--tokens", type=int, default=50_000, help="the base's token budget")
    p.add_argument("--proxies", type=int, default=24, help="the base's proxies")
    p.add_argument("--seeds", type=int, default=3, help="validation seeds")
    p.add_argument("--proxy", default="2x128")
    args = p.parse_args()

    settings = [("base", [])] if args.vary != ["tokens"] else []
    settings += [setting for axis in args.vary for setting in AXES[axis]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs, target, tok = common.mixing_case(tmp)
        for k, (name, extra) in enumerate(settings):
            rows.append((name, search(inputs, target, tok, tmp / f"mix-{k}", args, extra)))
            print(f"{name}: {rows[-1][1]['seconds']:.0f} s", flush=True)

    print(f"\nbase: {args.tokens:,} tokens, lr 2e-3, cosine, shared seed, {args.proxies} proxies ({args.proxy}); "
          f"seed noise over {args.seeds} validation seeds of natural")  # fmt: skip
    print(f"{'setting':<18} {'seconds':>8} {'mixtures sd':>12} {'seed sd':>8} {'ratio':>6} {'loo':>6} "
          f"{'held-out':>12} {'proposed - natural':>20}")  # fmt: skip
    for name, r in rows:
        fit, versus = r["fit"], r["versus"]
        print(f"{name:<18} {r['seconds']:>8.0f} {r['spread']:>12.4f} {r['noise']:>8.4f} "
              f"{r['spread'] / r['noise']:>6.1f} {rho(fit['loo_spearman']):>6} "
              f"{rho(fit['heldout_spearman']):>6} of {r['heldout']:>2} {versus['difference']:>+11.4f} "
              f"({versus['wins']}/{versus['seeds']})")  # fmt: skip


if __name__ == "__main__":
    main()
