"""Documents -> the token sequences the models read, and which tokens are scored.

Plain numpy over a fast tokenizer's batch encoding; no Beam, no torch. Three kinds of
document:
- plain text: every token is scored;
- instruction data (`prompt` set): the model reads prompt then response, and only the
  response is scored (what LoBaSS and learning percentage measure);
- chat data (`messages` set): the conversation rendered with the tokenizer's chat
  template, and only the assistant turns are scored: every token that carries some of a
  turn's characters, from its first content token through the template's end-of-turn
  marker.

A prefix token goes in front of every sequence, as models such as Llama and SmolLM2 were
trained and as lm-evaluation-harness scores (`loglikelihood_rolling`): `auto` is the
tokenizer's BOS, else its EOS. With a prefix every token of the document is scored; with
`none` the first token has no context and is not. A chat template that already starts
with the prefix token gets no second one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PREFIXES = ("auto", "bos", "eos", "none")


def prefix_id(tokenizer, prefix: str) -> int | None:
    """The token put before each document, or None; refuses a prefix the tokenizer lacks."""
    if prefix not in PREFIXES:
        raise ValueError(f"prefix must be one of {', '.join(PREFIXES)}")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if prefix == "auto":
        return bos if bos is not None else eos
    if prefix == "none":
        return None
    token = bos if prefix == "bos" else eos
    if token is None:
        raise ValueError(f"--prefix {prefix}: the tokenizer has no {prefix.upper()} token")
    return token


def render_chat(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The conversation as the chat template renders it, and the character range of each
    assistant turn (after the template's header for it, through its end-of-turn marker).

    Ranges come from rendering the conversation up to each assistant turn: the turn is what
    the rendering adds after `add_generation_prompt` opened it. A template that renders
    earlier turns differently once later ones follow is refused (ValueError).
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    ranges = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        opened = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        closed = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (text.startswith(closed) and closed.startswith(opened)):
            raise ValueError("the chat template renders this conversation's turns differently in context")
        ranges.append((len(opened), len(closed)))
    return text, ranges


@dataclass
class Encoded:
    """Token sequences of a batch of documents, flat.

    Args:
      ids, char_start, char_end, scored: one entry per token of every sequence, prefix
        included; character spans index `texts`; `scored` marks the tokens whose loss is
        reported.
      offsets: [documents + 1] where each document's tokens start in the flat arrays.
      texts: what each document's model reads after the prefix (see `refsift.schemas.examples`).
      n_bytes: UTF-8 bytes of each document's scored text.
      errors: document index -> why its text could not be encoded (it has no tokens).
    """

    ids: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    scored: np.ndarray
    offsets: np.ndarray
    texts: list[str]
    n_bytes: np.ndarray
    errors: dict[int, str]


def encode(tokenizer, documents: list[dict], prefix: int | None) -> Encoded:
    """Encodes documents ({text, prompt, messages}) with the tokenizer's fast backend in
    one batch; see the module docstring for what is scored. Vectorised over the batch: the
    per-document work is string handling only (rendering, byte counts)."""
    import itertools

    texts: list[str] = []
    pieces: list[str] = []  # strings to tokenize: each document's text, or its prompt then its response
    piece_doc: list[int] = []  # the document each piece belongs to
    piece_shift: list[int] = []  # where the piece starts in its document's text
    piece_scored: list[bool] = []  # plain documents and responses are scored whole
    chats: dict[int, list[tuple[int, int]]] = {}  # document -> assistant character ranges
    errors: dict[int, str] = {}
    for i, doc in enumerate(documents):
        try:
            if doc.get("messages"):
                text, chats[i] = render_chat(tokenizer, doc["messages"])
                parts = [(text, 0, False)]
            elif doc.get("prompt") is not None:
                text = doc["prompt"] + doc["text"]
                parts = [(doc["prompt"], 0, False), (doc["text"], len(doc["prompt"]), True)]
            else:
                text, parts = doc["text"], [(doc["text"], 0, True)]
        except Exception as err:  # a template that fails on this conversation
            errors[i] = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
            text, parts = "", []
        texts.append(text)
        for piece, shift, whole in parts:
            pieces.append(piece)
            piece_doc.append(i)
            piece_shift.append(shift)
            piece_scored.append(whole)
    encodings = tokenizer.backend_tokenizer.encode_batch(pieces, add_special_tokens=False)
    piece_len = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
    total = int(piece_len.sum())
    ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int32, count=total)
    spans = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(e.offsets for e in encodings)),
        dtype=np.int32,
        count=2 * total,
    ).reshape(-1, 2)
    spans += np.repeat(np.asarray(piece_shift, dtype=np.int32), piece_len)[:, None]
    scored = np.repeat(np.asarray(piece_scored, dtype=bool), piece_len)
    doc_len = np.bincount(np.asarray(piece_doc, dtype=np.int64), weights=piece_len, minlength=len(documents))
    doc_start = np.concatenate([[0], np.cumsum(doc_len)[:-1]]).astype(np.int64)
    for i, ranges in chats.items():
        at = slice(doc_start[i], doc_start[i] + int(doc_len[i]))
        starts, ends = spans[at, 0], spans[at, 1]
        # A token carrying any of an assistant turn's characters is the assistant's: in context, the
        # header's newline and the reply's first spaces can share one token.
        scored[at] = np.logical_or.reduce([(starts < b) & (ends > a) for a, b in ranges])
    # A prefix token before every sequence that does not already begin with it.
    nonempty = doc_len > 0
    if prefix is None:
        prefixed = np.zeros(len(documents), dtype=bool)
    else:
        first = ids[np.minimum(doc_start, max(total - 1, 0))] if total else np.zeros(len(documents), dtype=np.int32)
        prefixed = ~(nonempty & (first == prefix))
        prefixed[list(errors)] = False
    scored[doc_start[nonempty & ~prefixed]] = False  # a first token with nothing before it to predict it from
    at = doc_start[prefixed]
    ids = np.insert(ids, at, prefix if prefix is not None else 0)
    spans = np.insert(spans, at, 0, axis=0)
    scored = np.insert(scored, at, False)
    lengths = doc_len + prefixed
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_bytes = np.zeros(len(documents), dtype=np.int64)
    for i, text in enumerate(texts):
        doc_scored = scored[offsets[i] : offsets[i + 1]]
        if not doc_scored.any():
            continue
        first = int(spans[offsets[i] + np.argmax(doc_scored), 0])
        if i in chats:
            n_bytes[i] = sum(len(text[max(a, first) : b].encode("utf-8")) for a, b in chats[i] if b > first)
        else:
            n_bytes[i] = len(text[first:].encode("utf-8"))
    return Encoded(
        ids=ids.astype(np.int32, copy=False),
        char_start=np.ascontiguousarray(spans[:, 0]),
        char_end=np.ascontiguousarray(spans[:, 1]),
        scored=scored,
        offsets=offsets,
        texts=texts,
        n_bytes=n_bytes,
        errors=errors,
    )
