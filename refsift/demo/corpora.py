"""Text bundled with the package: slices of public-domain and free corpora in several domains.

The slices live in `refsift/data/corpora/<domain>.txt.gz` (provenance in
`refsift/data/README.md`); tests, the sample corpus and benchmarks read them from here, so
a fresh clone needs nothing else.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

DOMAINS = ("prose", "drama", "fortunes", "german", "spanish", "code", "math", "es_offensive")


def load_text(domain: str) -> str:
    """The whole bundled slice of one domain."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {', '.join(DOMAINS)}")
    data = resources.files("refsift") / "data" / "corpora" / f"{domain}.txt.gz"
    return gzip.decompress(data.read_bytes()).decode("utf-8")


def split_documents(text: str, target_chars: int = 1500) -> list[str]:
    """Cuts text into documents of about `target_chars`, at paragraph (else line) breaks."""
    sep = "\n\n" if text.count("\n\n") > len(text) / (4 * target_chars) else "\n"
    docs, current, size = [], [], 0
    for part in text.split(sep):
        if not part.strip():
            continue
        current.append(part)
        size += len(part) + len(sep)
        if size >= target_chars:
            docs.append(sep.join(current).strip())
            current, size = [], 0
    if current:
        docs.append(sep.join(current).strip())
    return docs


def numbered(texts: Iterable[str], prefix: str) -> list[dict]:
    """Records {"id": "<prefix>-<i>", "text": ...} for a list of texts."""
    return [{"id": f"{prefix}-{i}", "text": text} for i, text in enumerate(texts)]


def write_jsonl(path: str | Path, records: Iterable[dict], raw_lines: Iterable[str | bytes] = ()) -> int:
    """Writes records as JSON lines, then `raw_lines` as they are (malformed records, say);
    gzipped, reproducibly, when the name ends in .gz. Returns the number of lines."""
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    lines += [line.encode() if isinstance(line, str) else line for line in raw_lines]
    data = b"\n".join(lines) + b"\n"
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return len(lines)


def documents(domain: str, target_chars: int = 1500, limit: int | None = None) -> list[str]:
    """The bundled slice of `domain` as a list of documents."""
    return split_documents(load_text(domain), target_chars)[:limit]
