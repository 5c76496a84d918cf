"""Pieces the benchmarks share: corpora of a given size from the bundled text, tiny models,
and running a measurement in a child process (so that its peak RSS is its own)."""

from __future__ import annotations

import itertools
import json
import random
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


EDITS = (("edited 1%", 0.01), ("edited 5%", 0.05), ("edited 10%", 0.10), ("exact", 0.0))


def char_edit(text: str, share: float, rng: random.Random) -> str:
    """`text` with `share` of its characters replaced by random letters or spaces."""
    chars = list(text)
    for k in rng.sample(range(len(chars)), max(1, round(share * len(chars)))) if share else ():
        chars[k] = rng.choice("abcdefghijklmnopqrstuvwxyz ")
    return "".join(chars)


def write_planted_corpus(path: Path, documents: int, copies: float = 0.16, seed: int = 0) -> dict[str, list]:
    """One JSONL file of `documents` distinct-looking records of about 1,200 characters
    (each four passages drawn at random from one of five bundled domains, so that no two
    share more than a passage by chance, however many are drawn) of which a `copies` share
    are planted copies of earlier records, in equal parts edited at 1%, 5% and 10% of their
    characters and exact. Returns the planted pairs of each kind: (original id, copy id)."""
    rng = random.Random(seed)
    pools = [corpora.documents(d, target_chars=200) for d in ("prose", "drama", "german", "code", "math")]
    planted = {kind: [] for kind, _ in EDITS}
    recent: list[tuple[str, str]] = []  # the originals copies are drawn from: the last 5,000, spread over the file
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(documents):
            if recent and rng.random() < copies:
                kind, share = rng.choice(EDITS)
                original, text = rng.choice(recent)
                text = char_edit(text, share, rng)
                planted[kind].append((original, f"d{i}"))
            else:
                text = " ".join(rng.sample(pools[i % len(pools)], 4))
                if len(recent) < 5000:
                    recent.append((f"d{i}", text))
                else:
                    recent[i % 5000] = (f"d{i}", text)
            handle.write(json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False) + "\n")
    return planted


def mixing_case(directory: Path) -> tuple[list[str], str, str]:
    """benchmarks/mix.py's case: one JSONL file per bundled domain (`DOMAINS`, their last 12
    documents held back), a target that blends held-back code and math (so that the best
    mixture is not a corner), and a tokenizer for the proxies. Returns (inputs, target,
    tokenizer directory)."""
    docs = {d: corpora.documents(d, target_chars=600) for d in DOMAINS}
    for d, texts in docs.items():
        corpora.write_jsonl(directory / f"{d}.jsonl", corpora.numbered(texts[:-12], d))
    target = [{"id": f"t{d}{i}", "text": t} for d in ("code", "math") for i, t in enumerate(docs[d][-12:])]
    corpora.write_jsonl(directory / "target.jsonl", target)
    tok = tiny.train_tokenizer(sum((t[:40] for t in docs.values()), []), vocab_size=1024)
    saved = tiny.save(tiny.new_model(tok, layers=1, width=16, heads=1), tok, directory / "tok")
    return [str(directory / f"{d}.jsonl") for d in DOMAINS], str(directory / "target.jsonl"), str(saved)


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


def peak_rss_mb(children: bool = False) -> float:
    """This process's peak RSS, or with `children` the largest of its finished children's."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss / 1024
