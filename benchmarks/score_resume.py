"""How much of a run a kill costs: a run SIGKILLed when half its chunks are committed,
then `--resume`d, against the same run uninterrupted.

The resumed run re-reads the inputs in the index pass and redoes at most the chunks that
were in flight; everything committed is kept. It also pays the start-up again (imports,
model checks, Beam), which the benchmark measures on its own, with four documents, so the
two parts can be told apart. The target is a resume that takes under 0.6 of the full run's
time.

    python benchmarks/score_resume.py                  # about 1,500 documents, 4-layer model
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - started


def markers(run: Path) -> int:
    return len(list((run / "_chunks").glob("*.json"))) if (run / "_chunks").is_dir() else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=1500, help="documents of about 1.2 KB")
    p.add_argument("--kill-at", type=float, default=0.5, help="share of chunks committed when the run is killed")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = common.small_model(tmp / "model")
        corpus = common.write_corpus(tmp / "corpus.jsonl", args.documents)

        def command(out: Path, *extra: str, data: Path = corpus) -> list[str]:
            return [sys.executable, "-m", "refsift.cli", "score", "--input", str(data), "--model", model,
                    "--out", str(out), "--chunk-size", "64K", *extra]  # fmt: skip

        startup = timed(command(tmp / "few", data=common.write_corpus(tmp / "few.jsonl", 4)))
        full = timed(command(tmp / "full"))
        total = markers(tmp / "full")
        proc = subprocess.Popen(command(tmp / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.perf_counter()
        while markers(tmp / "killed") < round(args.kill_at * total) and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before_kill = time.perf_counter() - started
        kept = markers(tmp / "killed")
        resumed = timed(command(tmp / "killed", "--resume"))
        print(f"{args.documents} documents, {total} chunks; killed with {kept} committed ({before_kill:.1f} s in)")
        print(f"full run     {full:6.1f} s")
        print(f"resumed run  {resumed:6.1f} s  = {resumed / full:.2f} of the full run (target < 0.6)")
        print(f"killed + resumed {before_kill + resumed:.1f} s: {before_kill + resumed - full:+.1f} s against no kill")
        print(f"start-up (four documents) {startup:.1f} s; without it, resuming took "
              f"{(resumed - startup) / (full - startup):.2f} of the full run's work")  # fmt: skip


if __name__ == "__main__":
    main()
