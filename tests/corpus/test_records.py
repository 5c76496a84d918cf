"""How a JSONL line becomes a record: orjson reads what it can, and the standard library
decides whatever orjson refuses or would read differently, so the fast path changes no
record, id or rejection."""

import json

import pytest

from refsift.corpus.records import Fields, parse, parse_line


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": "a", "text": "plain"}',
        b'{"id": 123456789012345678901234567890, "text": "an id beyond 64 bits"}',
        b'{"id": 1.5, "text": "a float id"}',
        b'{"id": "x", "text": "not a number", "score": NaN}',
        b'{"id": "dup", "id": "last", "text": "duplicate keys"}',
        '{"id": "\u00e9", "text": "caf\u00e9 \u2028 line"}'.encode(),
    ],
)
def test_a_line_reads_as_the_json_module_reads_it(line):
    assert parse_line(line) == json.loads(line.decode("utf-8"))


def test_an_id_beyond_64_bits_keeps_its_digits():
    # orjson alone reads it as the float 1.2345678901234568e+29: two such ids would collide
    ids = [parse(f'{{"id": {n}, "text": "t"}}'.encode(), "jsonl", Fields())["id"] for n in (10**29, 10**29 + 1)]
    assert ids == ["100000000000000000000000000000", "100000000000000000000000000001"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"text": "\\ud800 a lone surrogate"}', "invalid_unicode"),
        (b'{"text": "cut', "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"text": "\xff"}', "invalid_utf8"),
        (b'{"text": "  \\n "}', "empty_text"),
    ],
)
def test_what_cannot_be_a_record_is_rejected_with_its_reason(line, reason):
    assert parse(line, "jsonl", Fields())[0] == reason


def test_a_blank_line_is_not_a_record():
    assert parse(b"  \r", "jsonl", Fields()) is None
