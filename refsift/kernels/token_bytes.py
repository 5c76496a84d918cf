"""The bytes a model generated, token by token, so that a report can show a byte sequence
that is not valid UTF-8 as the bytes it is, not as the U+FFFD that decoding puts there.

Byte-level BPE vocabularies (GPT-2, Llama 3, SmolLM2) spell each byte as one printable
character (GPT-2's `bytes_to_unicode`); SentencePiece byte fallback spells it `<0xE2>`.
`token_bytes` reads those spellings back, and returns None unless its bytes decode to
exactly the tokenizer's own text (another vocabulary, or a decoder that cleans up spaces):
then a report shows the decoded text only.
"""

from __future__ import annotations

import re

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable spelling of each byte, inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    spelled, extra = {}, 0
    for b in range(256):
        if b in printable:
            spelled[chr(b)] = b
        else:
            spelled[chr(256 + extra)] = b
            extra += 1
    return spelled


BYTE_DECODER = _byte_decoder()


def token_bytes(tokenizer, ids: list[int]) -> list[bytes] | None:
    """Each token's bytes (special tokens: none), or None when they cannot be recovered exactly."""
    special = set(tokenizer.all_special_ids)
    out = []
    for token_id, piece in zip(ids, tokenizer.convert_ids_to_tokens(ids)):
        if token_id in special or piece is None:
            out.append(b"")
        elif match := _BYTE_FALLBACK.fullmatch(piece):
            out.append(bytes([int(match[1], 16)]))
        elif all(c in BYTE_DECODER for c in piece):
            out.append(bytes(BYTE_DECODER[c] for c in piece))
        else:
            out.append(piece.replace("\u2581", " ").encode())
    if b"".join(out).decode("utf-8", "replace") != tokenizer.decode(ids, skip_special_tokens=True):
        return None
    return out


def is_escaped(c: str) -> bool:
    """A character that stands for a byte outside any UTF-8 character (surrogateescape)."""
    return "\udc80" <= c <= "\udcff"


def byte_texts(pieces: list[bytes]) -> list[str]:
    """Each token's share of the text its bytes spell: a character goes to the token that
    holds its last byte, so one split over tokens is shown whole; a byte outside any valid
    character becomes U+DC80 + byte (Python's surrogateescape), which `refsift.pages.html.esc`
    shows as the byte, marked."""
    text = b"".join(pieces).decode("utf-8", "surrogateescape")
    ends, total = [], 0
    for piece in pieces:
        total += len(piece)
        ends.append(total)
    out, position, token = [""] * len(pieces), 0, 0
    for c in text:
        position += 1 if is_escaped(c) else len(c.encode())
        while ends[token] < position:
            token += 1
        out[token] += c
    return out
