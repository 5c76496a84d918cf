"""Proxies in parallel: `refsift ablate` on benchmarks/mix.py's case (two weight arms over
six domains, 2x128 proxies) in one DirectRunner process and in two, and the peak memory of
a worker as the number of proxies grows.

In one process torch's threads take every core. With two worker processes each gets half
of them (`refsift.jobs.runners.worker_threads`). "1 thread" is one process held to one
torch thread: against it, two processes of one thread each show how proxies scale with
workers when each has a core of its own (a machine of more cores than a proxy can use).
Each run is its own child process, so its peak RSS is its own; with two workers "worker MB"
is the larger worker's. Rounds run in turn and the medians are reported.

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


def ablate(case: dict, out: Path, proxies: int, tokens: int, beam_args: list[str], threads: int = 0) -> dict:
    spec = {**case, "out": str(out), "proxies": proxies, "tokens": tokens, "threads": threads}
    return common.child([__file__, "--child", json.dumps(spec), *beam_args])


def child(spec: dict, beam_args: list[str]) -> None:
    import torch

    from refsift import cli

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
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
        ways = {"1 process": ([], 0), "1 thread": ([], 1), "2 processes": (TWO, 0)}
        runs = {name: [] for name in ways}
        for k in range(args.rounds):
            for i, (name, (beam, threads)) in enumerate(ways.items()):
                runs[name].append(ablate(case, tmp / f"s-{i}-{k}", args.proxies, args.tokens, beam, threads))
        print(f"{args.proxies} proxies (2x128, {args.tokens:,} tokens each), {args.rounds} rounds in turn")
        print(f"{'':<12} {'median s':>8} {'min s':>6} {'max s':>6} {'/ 1 process':>11} {'/ 1 thread':>10} "
              f"{'launcher MB':>11} {'worker MB':>9}")  # fmt: skip
        median = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
        for name, rs in runs.items():
            seconds = [r["seconds"] for r in rs]
            rss, worker = max(r["peak_rss_mb"] for r in rs), max(r["worker_rss_mb"] for r in rs)
            print(f"{name:<12} {median[name]:>8.1f} {min(seconds):>6.1f} {max(seconds):>6.1f} "
                  f"{median['1 process'] / median[name]:>11.2f} {median['1 thread'] / median[name]:>10.2f} "
                  f"{rss:>11.0f} {worker:>9.0f}")  # fmt: skip

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
