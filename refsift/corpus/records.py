"""One raw record -> a document, or a rejection saying why not. Plain functions, no Beam.

A document is a dict {doc_id, source, text, prompt, messages, input, row}: `text` is the
text to score (the response, with `prompt`), `messages` a chat conversation. A rejection
is a `rejected` table row {input, row, reason, detail, record}. Whatever a record holds
(invalid UTF-8, a lone surrogate, JSON nested 100,000 deep, a 5,000-digit number, a
wrong type), the result is one of the two: no record can end a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import orjson

from refsift.corpus.formats import ReadError, TooLarge
from refsift.corpus.tasks import source_name
from refsift.schemas.rejected import RECORD_LIMIT


@dataclass(frozen=True)
class Fields:
    """Which record fields hold what.

    Args:
      text: the text to score; with `prompt`, the response.
      id: the id field; None means `id` when a record has one, else a stable hash of the
        input path and row.
      source: the field holding the domain label; None means the input file's stem.
      prompt: instruction data: the field holding the prompt (scored as context only).
      messages: chat data: the field holding [{role, content}, ...]; only assistant turns
        are scored.
    """

    text: str = "text"
    id: str | None = None
    source: str | None = None
    prompt: str | None = None
    messages: str | None = None

    def columns(self) -> list[str]:
        """The record fields a reader needs."""
        names = [self.messages] if self.messages else [self.text, self.prompt]
        return [n for n in dict.fromkeys([*names, self.id or "id", self.source]) if n]


def rejection(path: str, row: int, reason: str, record, detail: str | None = None) -> dict:
    """A `rejected` row; the record is kept as text, cut to 4 KiB."""
    if isinstance(record, bytes):
        record = record.decode("utf-8", errors="backslashreplace")
    elif not isinstance(record, str):
        try:
            record = json.dumps(record, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            record = repr(record)
    record = record[:RECORD_LIMIT].encode("utf-8", errors="backslashreplace").decode("utf-8")
    return {"input": path, "row": row, "reason": reason, "detail": detail, "record": record}


def _encodable(*values) -> bool:
    """Whether every string can be written as UTF-8 (a lone surrogate such as "\\ud800",
    which JSON allows and scraped text often has, cannot)."""
    try:
        for value in values:
            if isinstance(value, str):
                value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_BIG = 2.0**63


def parse_line(raw: bytes) -> dict | tuple[str, str]:
    """A JSONL line -> the record, or (reason, detail)."""
    record, _ = _read_line(raw)
    return record


def _read_line(raw: bytes) -> tuple[dict | tuple[str, str], bool]:
    """(the record or (reason, detail), whether its strings are valid UTF-8). orjson reads
    what it can (strict JSON in valid UTF-8: nearly every line, several times faster, its
    strings encodable by construction); the rest goes to the standard library, whose
    leniency (NaN, lone surrogates, big integers) and messages decide."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _parse_line_slowly(raw), False
    if type(record) is not dict:
        return ("invalid_json", f"a JSON {type(record).__name__}, not an object"), True
    if float in map(type, record.values()) and any(abs(v) >= _BIG for v in record.values() if type(v) is float):
        return _parse_line_slowly(raw), False  # orjson reads an integer beyond 64 bits as a float: an id would change
    return record, True


def _parse_line_slowly(raw: bytes) -> dict | tuple[str, str]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return "invalid_utf8", str(err)
    try:
        record = json.loads(line)
    except RecursionError:
        return "invalid_json", "nested too deeply"
    except ValueError as err:  # JSONDecodeError, and numbers longer than Python converts
        return "invalid_json", str(err)[:200]
    if not isinstance(record, dict):
        return "invalid_json", f"a JSON {type(record).__name__}, not an object"
    return record


def _messages(value) -> tuple[list[dict] | None, str | None]:
    """Chat messages as [{role, content}] or (None, why not)."""
    if not isinstance(value, list) or not value:
        return None, "not a non-empty list of messages"
    out = []
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return None, "a message without a string role"
        if not isinstance(message.get("content"), str):
            return None, f"a {message['role']} message whose content is not a string"
        out.append({"role": message["role"], "content": message["content"]})
    if not any(m["role"] == "assistant" and m["content"].strip() for m in out):
        return None, "no assistant message to score"
    return out, None


def parse(payload, fmt: str, fields: Fields) -> dict | tuple[str, str | None] | None:
    """A payload -> {text, prompt, messages, id, source}, (reason, detail), or None for a
    blank line (not a record)."""
    if isinstance(payload, ReadError):
        return "read_error", payload.detail
    if isinstance(payload, TooLarge):
        return "too_large", f"{payload.size:,} bytes, more than --max-record-bytes {payload.limit:,}"
    encodable = False  # whether every string is known to be valid UTF-8
    if isinstance(payload, bytes):
        if not payload or payload.isspace():
            return None  # a blank line, or an empty file: no record
        if fmt == "text":
            try:
                return {"text": payload.decode("utf-8"), "prompt": None, "messages": None, "id": None, "source": None}
            except UnicodeDecodeError as err:
                return "invalid_utf8", str(err)
        payload, encodable = _read_line(payload)
        if isinstance(payload, tuple):
            return payload
    record = payload
    found: dict = {"prompt": None, "messages": None, "text": None}
    if fields.messages:
        if record.get(fields.messages) is None:
            return "missing_text", f"no {fields.messages!r} field"
        found["messages"], why = _messages(record[fields.messages])
        if why:
            return "invalid_messages", why
    else:
        if record.get(fields.text) is None:
            return "missing_text", f"no {fields.text!r} field"
        found["text"] = record[fields.text]
        if fields.prompt:
            if record.get(fields.prompt) is None:
                return "missing_text", f"no {fields.prompt!r} field"
            found["prompt"] = record[fields.prompt]
        for name in ("text", "prompt"):
            if isinstance(found[name], bytes):
                try:
                    found[name] = found[name].decode("utf-8")
                except UnicodeDecodeError as err:
                    return "invalid_utf8", str(err)
        if not isinstance(found["text"], str) or (fields.prompt and not isinstance(found["prompt"], str)):
            return "non_string_text", None
        if not found["text"] or found["text"].isspace():
            return "empty_text", None
    id_value = record.get(fields.id or "id")
    if id_value is None and fields.id is not None:
        return "missing_id", f"no {fields.id!r} field"
    found["id"] = None if id_value is None else id_text(id_value)
    source = record.get(fields.source) if fields.source else None
    found["source"] = None if source is None else str(source)
    contents = [m[k] for m in found["messages"] or [] for k in ("role", "content")]
    if not encodable and not _encodable(found["text"], found["prompt"], found["id"], found["source"], *contents):
        return "invalid_unicode", "a lone surrogate (\\ud800-\\udfff) that UTF-8 cannot encode"
    return found


def id_text(value) -> str:
    """An id as text: a string as it is, anything else as its JSON text (`1`, `true`,
    `[1,2]`). Ids compare as text, so the number 1 and the string "1" are one id: the later
    record is a `duplicate_id` rejection that names where the first one is."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, RecursionError):
        return repr(value)


def raw_record(payload) -> bytes | dict | str:
    """What a rejection keeps of a payload: its bytes, its columns, or the start of a record
    too large to keep."""
    if isinstance(payload, ReadError):
        return b""
    if isinstance(payload, TooLarge):
        return payload.head
    return payload


def default_id(path: str, row: int) -> str:
    return hashlib.sha1(f"{path}:{row}".encode()).hexdigest()[:16]


def to_document(parsed: dict, path: str, row: int) -> dict:
    return {
        "doc_id": parsed["id"] if parsed["id"] is not None else default_id(path, row),
        "source": parsed["source"] if parsed["source"] is not None else source_name(path),
        "text": parsed["text"],
        "prompt": parsed["prompt"],
        "messages": parsed["messages"],
        "input": path,
        "row": row,
    }
