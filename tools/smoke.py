"""A smoke of refsift's main paths on the bundled sample, for an environment the suite has
not run in: `.ci/run` builds one with the newest releases of refsift's dependencies (no
lock) and runs this, so that an upstream release that breaks refsift fails CI before it
reaches a user.

    python tools/smoke.py [--work DIR]

Tiny models are trained in seconds, then each command runs as a user runs it (the
`refsift` entry point, a process of its own): dedup, score with --dedup, sql, select,
distill, classify, verify. A step fails on a non-zero exit, a traceback, or output a quiet
run must not print (progress bars, warnings). On a failure it prints one line: the step,
the packages that differ from the lock, and the step's last line of output; exit 1.
"""

from __future__ import annotations

import argparse
import configparser
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lock  # noqa: E402  (tools/lock.py, beside this file)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "refsift" / "data" / "sample"
# What a quiet run never prints: tqdm bars, Python warnings, tracebacks.
NOISE = re.compile(r"\d+%\|| it/s\]|Warning\b|warnings\.warn|Traceback \(most recent call last\)")


def direct_dependencies() -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    return [lock.canonical(re.split(r"[<>=!~\[; ]", line)[0]) for line in lines if line and not line.startswith("#")]


def moved() -> str:
    """The direct dependencies installed here at another version than the lock's."""
    pins, have = lock.read(), lock.installed()
    direct = {name: pins[name] for name in direct_dependencies() if name in pins}
    return ", ".join(lock.differences(direct, have)) or "none of the direct dependencies"


def train_models(work: Path) -> tuple[str, str]:
    """A base on every domain and a reference on math: 1-layer GPT-2s, seconds each."""
    from refsift.demo import corpora, tiny

    texts = {d: corpora.documents(d)[:30] for d in ("prose", "code", "math", "german")}
    tokenizer = tiny.train_tokenizer(sum(texts.values(), []), vocab_size=400)
    paths = []
    for name, docs in (("base", sum(texts.values(), [])), ("reference", texts["math"])):
        model = tiny.new_model(tokenizer, layers=1, width=32, positions=256)
        tiny.pretrain(model, tokenizer, docs, steps=30)
        paths.append(str(tiny.save(model, tokenizer, work / name)))
    return paths[0], paths[1]


def steps(work: Path, base: str, reference: str) -> list[tuple[str, list[str]]]:
    inputs = sorted(str(p) for p in SAMPLE.glob("*.jsonl.gz"))
    run, mix = str(work / "run"), str(work / "mix")
    return [
        ("dedup", ["dedup", "--input", *inputs, "--out", str(work / "dedup")]),
        ("score", ["score", "--input", *inputs, "--model", base, "--reference", reference, "--max-length", "128",
                   "--dedup", str(work / "dedup"), "--out", run]),
        ("sql", ["sql", run, "SELECT source, count(*) AS docs, avg(excess_loss) AS excess FROM examples GROUP BY 1"]),
        ("select", ["select", run, "--tokens", "excess", "--ratio", "0.6", "--budget", "50%", "--out", mix]),
        ("distill", ["distill", run, "--by", "excess_loss", "--top", "30%", "--out", str(work / "clf")]),
        ("classify", ["classify", "--classifier", str(work / "clf"), "--input", *inputs, "--out", str(work / "cls")]),
        ("verify", ["verify", run]),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="directory for the smoke's models and runs (default: a new temporary one)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="refsift-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    base, reference = train_models(work)
    print(f"smoke: tiny models trained in {time.monotonic() - start:.0f} s", flush=True)
    refsift = str(Path(sys.executable).with_name("refsift"))
    for name, command in steps(work, base, reference):
        began = time.monotonic()
        done = subprocess.run([refsift, *command], capture_output=True, text=True)
        output = (done.stdout + done.stderr).strip()
        noise = [line for line in output.splitlines() if NOISE.search(line)]
        if done.returncode != 0 or noise:
            why = f"exit {done.returncode}" if done.returncode != 0 else "noise in a quiet run"
            last = (noise or output.splitlines() or ["(no output)"])[-1].strip()[:300]
            print(f"smoke: {name} failed ({why}); moved from the lock: {moved()}; it said: {last}")
            (work / f"{name}.log").write_text(output + "\n")
            print(f"smoke: its whole output is in {work / f'{name}.log'}")
            return 1
        print(f"smoke: {name} ok in {time.monotonic() - began:.0f} s", flush=True)
    print(f"smoke: all {len(steps(work, base, reference))} steps passed in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
