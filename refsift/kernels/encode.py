"""Documents -> the token sequences the models read, and which tokens are scored.

Plain numpy over a fast tokenizer's batch encoding; no Beam, no torch. Three kinds of
document:
- plain text: every token is scored, after a prefix token: `auto` is the tokenizer's BOS,
  else its EOS, as models such as Llama and SmolLM2 were trained and as
  lm-evaluation-harness scores (`loglikelihood_rolling`). With a prefix every token of the
  document is scored; with `none` the first token has no context and is not.
- instruction data (`prompt` set): the tokens TRL's SFTTrainer trains on (prompt-completion
  data): prompt + response + EOS tokenized as one string with the tokenizer's own special
  tokens and no prefix; the scored tokens start where that tokenization and the prompt's
  own diverge (a prompt ending in a space gives its space to the response's first token,
  as TRL does) and end with the EOS (not appended when the response already ends with it).
- chat data (`messages` set): the conversation rendered with the tokenizer's chat
  template, no prefix, and each assistant turn scored as TRL trains a conversational
  prompt-completion record of it (the conversation before it as the prompt): every token
  that carries some of the turn's characters after the template's header for it, through
  its end-of-turn marker.

Tokens of the appended EOS have an empty character span at the end of the text: `texts`
holds what the record says, and `n_bytes` counts its bytes only.
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


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
    """Encodes documents ({text, prompt, messages}) with the tokenizer's fast backend, in
    one batch per kind of tokenization; see the module docstring for what is scored.
    Vectorised over the batch: the per-document work is string handling only (rendering,
    byte counts) and, for instruction data, where the prompt's tokens end."""
    import itertools

    texts: list[str] = []
    strings: list[str] = []  # what each document's tokens encode: its text, with an EOS after a response
    chats: dict[int, list[tuple[int, int]]] = {}  # document -> assistant character ranges
    prompts: dict[int, str] = {}  # instruction document -> its prompt
    errors: dict[int, str] = {}
    eos = tokenizer.eos_token or ""
    for i, doc in enumerate(documents):
        try:
            if doc.get("messages"):
                text, chats[i] = render_chat(tokenizer, doc["messages"])
                string = text
            elif doc.get("prompt") is not None:
                text, prompts[i] = doc["prompt"] + doc["text"], doc["prompt"]
                string = text if text.endswith(eos) else text + eos
            else:
                text = string = doc["text"]
        except Exception as err:  # a template that fails on this conversation
            errors[i] = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
            text = string = ""
        texts.append(text)
        strings.append(string if i not in errors else "")
    backend = tokenizer.backend_tokenizer
    instruction = sorted(prompts)
    encodings = backend.encode_batch(strings, add_special_tokens=False)
    if instruction:  # as TRL tokenizes prompt-completion data: the tokenizer's own special tokens
        for i, whole in zip(instruction, backend.encode_batch([strings[i] for i in instruction])):
            encodings[i] = whole
        alone = backend.encode_batch([prompts[i] for i in instruction])
    doc_len = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
    total = int(doc_len.sum())
    ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int32, count=total)
    spans = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(e.offsets for e in encodings)),
        dtype=np.int32,
        count=2 * total,
    ).reshape(-1, 2)
    doc_start = np.concatenate([[0], np.cumsum(doc_len)[:-1]]).astype(np.int64)
    plain = np.ones(len(documents), dtype=bool)
    plain[list(chats) + instruction] = False
    scored = np.repeat(plain, doc_len)
    for i, ranges in chats.items():
        at = slice(doc_start[i], doc_start[i] + int(doc_len[i]))
        starts, ends = spans[at, 0], spans[at, 1]
        # A token carrying any of an assistant turn's characters is the assistant's: in context, the
        # header's newline and the reply's first spaces can share one token.
        scored[at] = np.logical_or.reduce([(starts < b) & (ends > a) for a, b in ranges])
    for k, i in enumerate(instruction):
        begin, end = int(doc_start[i]), int(doc_start[i] + doc_len[i])
        scored[begin + _common_prefix(alone[k].ids, encodings[i].ids) : end] = True
        spans[begin:end] = np.minimum(spans[begin:end], len(texts[i]))  # the EOS: an empty span at the end
    # A prefix token before every plain sequence that does not already begin with it.
    nonempty = doc_len > 0
    if prefix is None:
        prefixed = np.zeros(len(documents), dtype=bool)
    else:
        first = ids[np.minimum(doc_start, max(total - 1, 0))] if total else np.zeros(len(documents), dtype=np.int32)
        prefixed = plain & ~(nonempty & (first == prefix))
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
