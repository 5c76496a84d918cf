import re
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from refsift.kernels import words

SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def test_the_wide_spaces_are_pythons():
    wide = re.compile(f"[{words.WIDE_SPACES}]")
    assert [c for c in SPACES if ord(c) > 127] == [c for c in map(chr, range(128, sys.maxunicode + 1)) if wide.match(c)]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(SPACES), st.text(max_size=6)), max_size=30).map("".join))
def test_counts_what_split_finds(text):
    assert words.count(text) == len(text.split())


def test_counts_words_of_every_kind():
    cases = {"": 0, " ": 0, "a": 1, " a ": 1, "a b\tc\nd\re\x0bf\x0cg": 7, "a\x1cb\x1fc": 3,
             "día\u00a0año": 2, "東京\u3000大阪": 2, "naïve café": 2, "\ud800 x": 2}  # fmt: skip
    assert {text: words.count(text) for text in cases} == cases
