"""How a long document is cut into model-sized windows so that every token is scored once.

Window 0 covers tokens [0, L) and scores positions 1..L-1 (token 0 has no left context).
Window k > 0 starts `context` tokens before the end of window k-1: its first `context`
positions are fed to the model as left context only, and it scores the rest. So every token
but the document's first is scored exactly once, each with at least `context` tokens of
left context once past the first window.
"""

from __future__ import annotations

from typing import NamedTuple


class Window(NamedTuple):
    index: int  # window number within the document
    start: int  # document position of the window's first (fed) token
    end: int  # one past the document position of its last token
    score_from: int  # first window-local position that this window scores


def plan_windows(n_tokens: int, max_length: int, context: int) -> list[Window]:
    """Windows covering `n_tokens` tokens; empty when there is nothing to score (< 2 tokens)."""
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    if not 1 <= context < max_length:
        raise ValueError("context must satisfy 1 <= context < max_length")
    if n_tokens < 2:
        return []
    windows = [Window(0, 0, min(max_length, n_tokens), 1)]
    while windows[-1].end < n_tokens:
        start = windows[-1].end - context
        windows.append(Window(len(windows), start, min(start + max_length, n_tokens), context))
    return windows
