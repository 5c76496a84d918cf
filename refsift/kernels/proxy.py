"""Small proxy models and the rows they train on: a fresh GPT-2 of L layers and width W for
a tokenizer (`--proxy 2x128`), and an arm's training rows within a token budget.

Rows are drawn in an order seeded by (seed, source): under the same seed two arms that take
from the same source read its blocks in the same order (common random numbers), so what
differs between them is what they were given, not the draw.
"""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np


def parse_proxy(text: str) -> tuple[int, int] | None:
    """'2x128' -> (2 layers, width 128); None for anything else (a model directory)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else None


def new_model(tokenizer, *, layers: int = 2, width: int = 64, heads: int = 2, positions: int = 512, seed: int = 0):
    """A freshly initialised GPT-2 for `tokenizer`'s vocabulary; the same weights for a seed."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config).eval()


def heads_for(width: int) -> int:
    """Attention heads for a width: 64-wide heads where they divide it, else fewer."""
    return next(h for h in (width // 64, 4, 2, 1) if h >= 1 and width % h == 0)


def _order(n: int, seed: int, key: str) -> np.ndarray:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big")).permutation(n)


def cycle(n: int, count: int, seed: int, key: str) -> list[int]:
    """`count` indices into n items: whole seeded permutations, then part of one more."""
    out: list[int] = []
    epoch = 0
    while len(out) < count:
        out.extend(_order(n, seed + 1_000_003 * epoch, key)[: count - len(out)].tolist())
        epoch += 1
    return out


def mixture_rows(blocks: dict[str, list[list[int]]], shares: dict[str, float], tokens: int, block: int,
                 seed: int) -> list[dict]:  # fmt: skip
    """Training rows (blocks of `block` tokens) for `tokens` split by `shares` across sources,
    each source's blocks in its seeded order (repeated when its share needs more than it has)."""
    rows = []
    for source in sorted(shares):
        count = round(shares[source] * tokens / block)
        if count and not blocks.get(source):
            raise ValueError(f"source {source} has no block of {block} tokens")
        rows += [{"input_ids": blocks[source][i], "source": source} for i in cycle(len(blocks[source]), count, seed,
                                                                                    source)]  # fmt: skip
    return [rows[i] for i in _order(len(rows), seed, "mixture")]


def budget_rows(rows: list[dict], tokens: int, seed: int) -> list[dict]:
    """Rows of a selection export, in seeded order (repeated when needed), until `tokens`
    tokens are fed."""
    lengths = [len(r["input_ids"]) for r in rows]
    per_epoch = sum(lengths)
    if not per_epoch:
        raise ValueError("no row has a token")
    count = math.ceil(tokens / per_epoch * len(rows))
    out, fed = [], 0
    for i in cycle(len(rows), count + len(rows), seed, "export"):
        if fed >= tokens:
            break
        out.append(rows[i])
        fed += lengths[i]
    return out
