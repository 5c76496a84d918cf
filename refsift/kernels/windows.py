"""How token sequences are cut into model-sized windows so that every scored token is
scored exactly once, and the columnar `Windows` that carry them through the scorers.

A sequence of n tokens whose first scored position is `first` (1 after a prefix token, or
after a document's first token; the first response token after a prompt):
- window 0 starts at min(n - max_length, first - context), but not before 0: the whole
  sequence when it fits, else as late as still gives the first scored token `context`
  tokens of left context (a long prompt is context, not a reason for extra windows);
- window k > 0 starts `context` tokens before the end of window k-1: its first `context`
  positions are fed as left context only, and it scores the rest.
So every scored position is scored once, each with at least min(context, position)
tokens before it. Windows that would score nothing (a long non-assistant stretch of a chat)
are dropped.

`context=None` lays out lm-evaluation-harness's rolling windows (`loglikelihood_rolling`,
`get_rolling_token_windows` with its context length of 1) instead: the scored positions are
cut into disjoint blocks of `max_length`, each block fed with the `max_length` tokens just
before its last position. A block's first token is predicted from one token of context
(the last block's from more: it is right-aligned); a window then holds `max_length + 1`
tokens, of which the model reads the first `max_length` (the last is only predicted).
Totals equal lm-eval's with the same `max_length`; the re-fed context above gives every
token more context and so slightly lower losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Window(NamedTuple):
    index: int  # window number within the document
    start: int  # sequence position of the window's first (fed) token
    end: int  # one past the sequence position of its last token
    score_from: int  # first window-local position that this window may score


def check(max_length: int, context: int | None) -> None:
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    if context is not None and not 1 <= context < max_length:
        raise ValueError("context must satisfy 1 <= context < max_length")


def plan_windows(n_tokens: int, max_length: int, context: int | None, first: int = 1) -> list[Window]:
    """Windows covering positions [first, n_tokens); empty when there is nothing to score.
    `context=None`: lm-evaluation-harness's rolling windows (see the module docstring)."""
    check(max_length, context)
    if first < 1 or n_tokens <= first:
        return []
    if context is None:
        windows = []
        for a in range(first, n_tokens, max_length):
            b = min(a + max_length, n_tokens)  # this window predicts positions [a, b)
            start = max(0, b - 1 - max_length)
            windows.append(Window(len(windows), start, b, a - start))
        return windows
    start = min(max(0, n_tokens - max_length), max(0, first - context))
    windows = [Window(0, start, min(start + max_length, n_tokens), first - start)]
    while windows[-1].end < n_tokens:
        start = windows[-1].end - context
        windows.append(Window(len(windows), start, min(start + max_length, n_tokens), context))
    return windows


@dataclass
class Windows:
    """A batch's windows, columnar: one entry per window, and flat per-token arrays.

    Args:
      doc: the document (index into the batch) of each window.
      window: the window's number within its document.
      token_start: sequence position of the window's first token.
      offsets: [windows + 1] where each window's tokens start in the flat arrays.
      token_ids, char_start, char_end: the fed tokens and their character spans.
      scored: the positions this window reports a loss for.
      nll: role -> float32 loss per fed token, NaN where not scored (filled by the scorers).
    """

    doc: np.ndarray
    window: np.ndarray
    token_start: np.ndarray
    offsets: np.ndarray
    token_ids: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    scored: np.ndarray
    nll: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.doc)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def document_sums(self, n_documents: int, values: np.ndarray | None = None) -> np.ndarray:
        """Float64 sum of `values` (one per fed token) over each document's scored tokens;
        without `values`, how many tokens of each document are scored."""
        token_doc = np.repeat(self.doc, self.lengths)[self.scored]
        weights = None if values is None else values[self.scored].astype(np.float64)
        return np.bincount(token_doc, weights=weights, minlength=n_documents).astype(np.float64)


def cut(encoded, max_length: int, context: int | None) -> tuple[Windows, np.ndarray]:
    """Windows of every document of an `Encoded` batch, and the per-document count of
    scored tokens (0: nothing to score, the document is too short)."""
    check(max_length, context)
    doc, number, start, end, score_from = [], [], [], [], []
    scored_tokens = np.zeros(len(encoded.offsets) - 1, dtype=np.int64)
    for d in range(len(encoded.offsets) - 1):
        begin, n = int(encoded.offsets[d]), int(encoded.offsets[d + 1] - encoded.offsets[d])
        mask = encoded.scored[begin : begin + n]
        if not mask.any():
            continue
        scored_tokens[d] = int(mask.sum())
        k = 0
        for w in plan_windows(n, max_length, context, first=int(np.argmax(mask))):
            if not mask[w.start + w.score_from : w.end].any():
                continue
            doc.append(d)
            number.append(k)
            start.append(begin + w.start)
            end.append(begin + w.end)
            score_from.append(w.score_from)
            k += 1
    start_arr, end_arr = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    lengths = end_arr - start_arr
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    local = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    flat = np.repeat(start_arr, lengths) + local  # each fed token's index in the encoded arrays
    scored = encoded.scored[flat] & (local >= np.repeat(np.asarray(score_from, dtype=np.int64), lengths))
    doc_arr = np.asarray(doc, dtype=np.int32)
    return (
        Windows(
            doc=doc_arr,
            window=np.asarray(number, dtype=np.int32),
            token_start=(start_arr - encoded.offsets[doc_arr]).astype(np.int32),
            offsets=offsets,
            token_ids=encoded.ids[flat],
            char_start=encoded.char_start[flat],
            char_end=encoded.char_end[flat],
            scored=scored,
        ),
        scored_tokens,
    )


def length_batches(lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Window indices in batches of similar length: sorted by length, each batch holding as
    many windows as fit in `max_tokens` padded tokens (at least one). Short windows share a
    forward pass instead of each padding out a slot sized for the longest."""
    batches, current, width = [], [], 0
    for i in np.argsort(lengths, kind="stable"):
        width_if_added = max(width, int(lengths[i]))
        if current and width_if_added * (len(current) + 1) > max_tokens:
            batches.append(np.asarray(current))
            current, width_if_added = [], int(lengths[i])
        current.append(i)
        width = width_if_added
    if current:
        batches.append(np.asarray(current))
    return batches


def padded(windows: Windows, index: np.ndarray, pad_id: int):
    """Right-padded [rows, width] arrays for some windows: (ids, cells, targets, flat).

    `cells` is True where a token sits (the attention mask), `targets` where its loss is
    wanted, and `flat` the token's index in the flat arrays, in the row-major order of the
    True cells: `values[cells]` lines up with `flat`.
    """
    lengths = windows.lengths[index]
    width = int(lengths.max())
    cells = np.arange(width) < lengths[:, None]
    flat = (windows.offsets[index][:, None] + np.arange(width))[cells]
    ids = np.full((len(index), width), pad_id, dtype=np.int64)
    ids[cells] = windows.token_ids[flat]
    targets = np.zeros((len(index), width), dtype=bool)
    targets[cells] = windows.scored[flat]
    return ids, cells, targets, flat
