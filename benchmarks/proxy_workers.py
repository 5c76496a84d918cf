"""Proxies in parallel: `refsift ablate` on benchmarks/mix.py's case (two weight arms over
six domains, 2x128 proxies) in one DirectRunner process and in two, and the peak memory of
a worker as the number of proxies grows.

In one process torch's threads take every core. With two worker processes each gets half
of them (`refsift.jobs.runners.threads_per_worker`). Each run is its own child process, so
its peak RSS is its own; with two workers "worker MB" is the larger worker's. Rounds run in
turn and the medians are reported.

    python benchmarks/proxy_workers.py [--proxies 8] [--tokens 25000] [--rounds 2] [--memory 4,8,16]
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

TWO = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def ablate(case: dict, out: Path, proxies: int, tokens: int, beam_args: list[str]) -> dict:
    argv = [__file__, "--child", json.dumps({**case, "out": str(out), "proxies": proxies, "tokens": tokens}),
            *beam_args]  # fmt: skip
    return common.child(argv)


def child(spec: dict, beam_args: list[str]) -> None:
    from refsift import cli

    started = time.perf_counter()
    argv = ["ablate", "--arm", "natural=natural", "--arm", "uniform=uniform", "--input", *spec["inputs"],
            "--eval", spec["target"], "--tokenizer", spec["tokenizer"], "--proxy", "2x128",
            "--tokens", str(spec["tokens"]), "--seeds", str(spec["proxies"] // 2), "--curve-points", "1",
            "--max-length", "256", "--context", "32", "--out", spec["out"], *beam_args]  # fmt: skip
    assert cli.main(argv) == 0
    runs = json.loads((Path(spec["out"]) / "report.json").read_text())
    result = {"seconds": time.perf_counter() - started, "peak_rss_mb": common.peak_rss_mb(),
              "worker_rss_mb": common.peak_rss_mb(children=True), "arms": len(runs["arms"])}  # fmt: skip
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--proxies", type=int, default=8, help="proxies of the scaling runs (two arms, half as seeds)")
    p.add_argument("--tokens", type=int, default=25_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--memory", default="4,8,16", help="proxies of the memory runs (one process and two)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args, beam_args = p.parse_known_args()
    if args.child:
        return child(json.loads(args.child), beam_args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs, target, tok = common.mixing_case(tmp)
        case = {"inputs": inputs, "target": target, "tokenizer": tok}
        runs = {"1 process": [], "2 processes": []}
        for k in range(args.rounds):
            for name, beam in (("1 process", []), ("2 processes", TWO)):
                runs[name].append(ablate(case, tmp / f"s-{name[0]}-{k}", args.proxies, args.tokens, beam))
        print(f"{args.proxies} proxies (2x128, {args.tokens:,} tokens each), {args.rounds} rounds in turn")
        print(
            f"{'':<12} {'median s':>8} {'min s':>6} {'max s':>6} {'speed-up':>8} {'launcher MB':>11} {'worker MB':>9}"
        )
        one = statistics.median(r["seconds"] for r in runs["1 process"])
        for name, rs in runs.items():
            seconds = [r["seconds"] for r in rs]
            print(f"{name:<12} {statistics.median(seconds):>8.1f} {min(seconds):>6.1f} {max(seconds):>6.1f} "
                  f"{one / statistics.median(seconds):>8.2f} {max(r['peak_rss_mb'] for r in rs):>11.0f} "
                  f"{max(r['worker_rss_mb'] for r in rs):>9.0f}")  # fmt: skip

        sizes = [int(n) for n in args.memory.split(",") if n]
        if not sizes:
            return
        print(
            f"\npeak RSS (MB) against proxies ({args.tokens:,} tokens each); in one process the launcher is the worker"
        )
        print(f"{'proxies':>7} {'1 process':>10} {'2 processes: worker':>20} {'launcher':>9}")
        for n in sizes:
            one_run = ablate(case, tmp / f"m1-{n}", n, args.tokens, [])
            two_run = ablate(case, tmp / f"m2-{n}", n, args.tokens, TWO)
            print(f"{n:>7} {one_run['peak_rss_mb']:>10.0f} {two_run['worker_rss_mb']:>20.0f} "
                  f"{two_run['peak_rss_mb']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
