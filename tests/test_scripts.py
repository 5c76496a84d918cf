"""Text shown as written: documents and samples in Cyrillic, Chinese, Japanese and emoji,
whose characters byte-level tokenizers split over several tokens, appear in the reports
exactly as they are stored, each character once."""

import json

from refsift import cli
from refsift.transforms.contrastive_sampler import token_texts
from tests.browser import open_page
from tests.conftest import held_out, write_jsonl

MIXED = "Она сказала: «Привет!» 東京タワーは高い。😀👍🏽 — naïve café. " * 3


def test_generated_samples_are_cut_into_whole_characters(tokenizer):
    ids = tokenizer(MIXED, add_special_tokens=False)["input_ids"]
    pieces = token_texts(tokenizer, ids)
    assert len(ids) > len(MIXED) / 2 and len(pieces) == len(ids)  # many characters take several tokens
    assert "".join(pieces) == MIXED and not any("\ufffd" in p for p in pieces)


def test_reports_show_every_script_as_written(tmp_path, prose_model, code_finetuned):
    docs = [{"id": "mixed", "text": MIXED}, *({"id": f"p{i}", "text": t} for i, t in enumerate(held_out("prose", 3)))]
    write_jsonl(tmp_path / "docs.jsonl", docs)
    run = tmp_path / "run"
    args = ["score", "--input", str(tmp_path / "docs.jsonl"), "--model", prose_model, "--finetuned", code_finetuned]
    assert cli.main([*args, "--out", str(run)]) == 0
    assert cli.main(["report", str(run)]) == 0
    shown = open_page(run / "report.html")["token_texts"]
    assert MIXED in shown  # the whole document, character for character, with nothing doubled
    assert cli.main(["novelty", "--base", prose_model, "--finetuned", code_finetuned, "--run", str(run), "--out",
                     str(tmp_path / "novelty"), "--num-samples", "2", "--max-new-tokens", "8"]) == 0  # fmt: skip
    assert MIXED in open_page(tmp_path / "novelty" / "report.html")["token_texts"]
    report = json.loads((tmp_path / "novelty" / "report.json").read_text())
    for sample in report["samples"]:
        assert "".join(t["text"] for t in sample["tokens"]) == sample["text"]
