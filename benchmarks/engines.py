"""The same scoring run on every engine refsift is tested on: wall time, peak memory of a
worker process, and equality with the DirectRunner in one process.

Engines: the DirectRunner in-process and with 2 worker processes (multi_processing), the
portable runner with an embedded job service and a separate pool of SDK workers (the path
of Dataflow Runner v2), and Beam's DaskRunner on a `distributed` LocalCluster of 2 and of 4
worker processes. A worker's memory: the launcher's own peak for the in-process runner; the
largest resident set of any worker process otherwise, sampled every 0.2 s. Equality: the
same documents, rows, token ids and rejections, and losses equal to 1e-5 relative.

Then the pipeline's parallel share: a near-free model (1 layer, 16 wide: scoring costs
almost nothing) on Dask with 1 and with 2 workers, on 2 cores.

    python benchmarks/engines.py                 # about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402


def snapshot(run: Path) -> dict:
    from refsift import catalog

    q = {
        "examples": "SELECT doc_id, input, row, nll_model FROM examples ORDER BY doc_id",
        "tokens": 'SELECT doc_id, "window", token_ids FROM tokens ORDER BY doc_id, "window"',
        "rejected": "SELECT input, row, reason FROM rejected ORDER BY input, row",
    }
    return {name: catalog.query(str(run), sql)[1] for name, sql in q.items()}


def equal(a: dict, b: dict) -> bool:
    if a["rejected"] != b["rejected"] or a["tokens"] != b["tokens"]:
        return False
    if [r[:3] for r in a["examples"]] != [r[:3] for r in b["examples"]]:
        return False
    return all(abs(x[3] - y[3]) <= 1e-5 * abs(y[3]) for x, y in zip(a["examples"], b["examples"]))


def score(corpus: Path, model: str, out: Path, extra: list[str]) -> float:
    from refsift import cli

    started = time.perf_counter()
    argv = ["score", "--input", str(corpus), "--model", model, "--out", str(out), "--task-size", "64K", *extra]
    assert cli.main(argv) == 0
    return time.perf_counter() - started


class WorkerPeak:
    """The largest resident set of any process below this one (the workers), sampled every
    0.2 s while the block runs. (A child's own ru_maxrss cannot say: Linux carries the
    launcher's peak over into a spawned process.)"""

    def __enter__(self):
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self._thread.start()
        return self

    def _sample(self):
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    self.peak = max(self.peak, child.memory_info().rss / 2**20)
                except psutil.Error:
                    pass

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_dask(workers: int, corpus: Path, model: str, out: Path) -> tuple[float, float]:
    from distributed import LocalCluster

    for name in ("distributed", "tornado"):  # the runner's client outlives the cluster: its complaints are noise
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as c:
        with WorkerPeak() as peak:
            seconds = score(corpus, model, out, ["--runner", "dask", "--dask-address", c.scheduler_address])
    return seconds, peak.peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=400)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = common.write_corpus(tmp / "corpus.jsonl", args.documents, chars=1200)
        model = common.small_model(tmp / "model")
        rows = []
        seconds = score(corpus, model, tmp / "direct", [])
        reference = snapshot(tmp / "direct")
        rows.append(
            ("DirectRunner, in-process", seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, True)
        )
        multi = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
        with WorkerPeak() as peak:
            seconds = score(corpus, model, tmp / "multi", multi)
        rows.append(("DirectRunner, 2 processes", seconds, peak.peak, equal(snapshot(tmp / "multi"), reference)))
        port = free_port()
        pool = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            # the pool starts each SDK worker as `python`: this interpreter, first on PATH
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
        )
        time.sleep(3)
        portable = ["--runner", "portable", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                    f"--environment_config=localhost:{port}"]  # fmt: skip
        with WorkerPeak() as peak:
            seconds = score(corpus, model, tmp / "portable", portable)
        pool.terminate()
        rows.append(("Portable, worker pool", seconds, peak.peak, equal(snapshot(tmp / "portable"), reference)))
        for workers in (2, 4):
            seconds, rss = on_dask(workers, corpus, model, tmp / f"dask{workers}")
            rows.append((f"Dask, {workers} workers", seconds, rss, equal(snapshot(tmp / f"dask{workers}"), reference)))
        print(f"{args.documents} documents, a 4-layer 256-wide model, 2 CPU cores")
        print(f"{'engine':<28} {'seconds':>8} {'peak RSS of a worker MB':>24} {'equal':>6}")
        for name, seconds, rss, same in rows:
            print(f"{name:<28} {seconds:>8.1f} {rss:>24.0f} {'yes' if same else 'NO':>6}")
        free = common.near_free_model(tmp / "free")
        times = {w: on_dask(w, corpus, free, tmp / f"free{w}")[0] for w in (1, 2)}
        speedup = times[1] / times[2]
        print(f"near-free model on Dask: 1 worker {times[1]:.1f} s, 2 workers {times[2]:.1f} s: {speedup:.2f}x")


if __name__ == "__main__":
    main()
