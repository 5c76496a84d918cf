"""Pieces the benchmarks share: corpora of a given size from the bundled text, tiny models,
and running a measurement in a child process (so that its peak RSS is its own)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

from refsift.demo import corpora, tiny

DOMAINS = ("prose", "drama", "german", "code", "math", "spanish")


def write_corpus(path: Path, documents: int, chars: int = 1200, domains=DOMAINS) -> Path:
    """One JSONL file of `documents` records of about `chars` characters, cycling through
    the bundled domains (texts repeat once the slices run out; ids never do)."""
    texts = itertools.cycle([t for d in domains for t in corpora.documents(d, target_chars=chars)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i, text in zip(range(documents), texts):
            handle.write(json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False) + "\n")
    return path


def tokenizer(vocab_size: int = 2048):
    return tiny.train_tokenizer(sum((corpora.documents(d)[:30] for d in DOMAINS), []), vocab_size=vocab_size)


def near_free_model(directory: Path, vocab_size: int = 2048) -> str:
    """A 1-layer, 16-wide GPT-2: its forward pass costs almost nothing, so what a pipeline
    spends around the model shows."""
    tok = tokenizer(vocab_size)
    return str(tiny.save(tiny.new_model(tok, layers=1, width=16, heads=1, positions=1024), tok, directory))


def small_model(directory: Path) -> str:
    """A 4-layer, 256-wide GPT-2 (about 3M parameters)."""
    tok = tokenizer()
    return str(tiny.save(tiny.new_model(tok, layers=4, width=256, heads=4, positions=1024), tok, directory))


def child(argv: list[str]) -> dict:
    """Runs `python <argv>` and returns the JSON its last `RESULT ` line carries."""
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"child {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
