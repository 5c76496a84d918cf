"""Which selection trains a better model? A Rho-1 token selection, an excess-loss document
selection and a random document selection of the same budget, each trained into proxies
with `refsift ablate` and compared with intervals. The result is reported whatever it says.

The set-up is benchmarks/slm_vs_clm.py's: a noisy corpus (math, general text, junk), a
base model trained on general text, and a reference trained on clean math. Every arm
continues training the base (`--proxy BASE`) on the same number of tokens, over
`--seeds` seeds, and is measured on held-out math and general documents.

    python benchmarks/ablation.py [--seeds 5] [--tokens 60000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from slm_vs_clm import noisy_case  # noqa: E402

from refsift import cli  # noqa: E402
from refsift.demo import corpora  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--tokens", type=int, default=60_000, help="training tokens of every proxy")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        case = noisy_case(tmp)
        base_dir, ref_dir, corpus = case.base_dir, case.ref_dir, case.corpus
        math_test, general_test = case.math_test, case.general_test
        target = tmp / "heldout.jsonl"
        held_out = [{"id": f"m{i}", "text": t, "domain": "math"} for i, t in enumerate(math_test)]
        held_out += [{"id": f"g{i}", "text": t, "domain": "general"} for i, t in enumerate(general_test)]
        corpora.write_jsonl(target, held_out)
        run = str(tmp / "run")
        window = ["--max-length", "128", "--context", "16"]
        assert cli.main(["score", "--input", str(corpus), "--model", base_dir, "--reference", ref_dir, "--out", run,
                         *window]) == 0  # fmt: skip
        selections = {
            "rho1": ["--tokens", "excess", "--ratio", "0.6"],  # every document, its top 60% tokens by excess loss
            "excess_docs": ["--by", "excess_loss", "--budget", "50%"],
            "random_docs": ["--by", "hash(doc_id)", "--budget", "50%"],
        }
        for name, argv in selections.items():
            assert cli.main(["select", run, "--out", str(tmp / name), *argv]) == 0
        started = time.time()
        out = tmp / "ablation"
        arms = [a for name in selections for a in ("--arm", f"{name}={tmp / name}")]
        assert cli.main(["ablate", *arms, "--eval", str(target), "--source-field", "domain", "--proxy", base_dir,
                         "--tokens", str(args.tokens), "--seeds", str(args.seeds), "--lr", "1e-3", *window,
                         "--out", str(out)]) == 0  # fmt: skip
        report = json.loads((out / "report.json").read_text())
        print(f"\n{args.seeds} seeds, {args.tokens:,} tokens per proxy, {time.time() - started:.0f} s for the ablation")
        print(f"{'arm':<12} {'against':<12} {'eval':<16} {'difference':>10} {'90% interval':>22} {'wins':>6}  verdict")
        for c in report["comparisons"]:
            if c["b"] == "random_docs":
                interval = f"{c['low']:+.4f} .. {c['high']:+.4f}"
                print(f"{c['a']:<12} {c['b']:<12} {c['eval']:<16} {c['difference']:>+10.4f} {interval:>22} "
                      f"{c['wins']:>3}/{c['seeds']}  {c['verdict']}")  # fmt: skip


if __name__ == "__main__":
    main()
