"""`refsift score` end to end on tiny models: exact losses, windows, scores, rejections."""

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from refsift import catalog
from refsift.config import ScoreConfig
from refsift.pipelines import score
from refsift.schemas import REJECT_REASONS


@pytest.fixture(scope="module")
def run(tmp_path_factory, mixed_corpus, prose_model, code_model, mixed_model):
    """One run over every format and bad record, with all five kinds of role."""
    inputs, _ = mixed_corpus
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = ScoreConfig(
        inputs=(f"{inputs}/*",),
        out=str(out),
        model=prose_model,
        reference=code_model,
        finetuned=mixed_model,
        checkpoints=(("early", code_model), ("late", mixed_model)),
        max_length=64,
        context=16,
        batch_size=4,
    )
    manifest = score.run(cfg)
    return out, manifest


def sql(run_dir, query):
    con = catalog.connect(str(run_dir))
    try:
        return con.sql(query).fetchall()
    finally:
        con.close()


def test_losses_equal_an_independent_forward_pass(run, prose_model):
    out, _ = run
    model = AutoModelForCausalLM.from_pretrained(prose_model).eval()
    rows = sql(out, 'SELECT token_ids, nll_model, "window" FROM tokens')
    after_boundary = 0
    for token_ids, nll, window in rows:
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([token_ids])).logits[0].float(), -1)
        for i, value in enumerate(nll):
            if value is None:
                continue
            assert abs(value + logp[i - 1, token_ids[i]].item()) < 1e-5
            after_boundary += window > 0 and i == 16
    assert after_boundary >= 2  # the long document was split, and its boundaries checked


def test_every_token_scored_exactly_once_in_document_order(run, prose_model):
    out, _ = run
    tokenizer = AutoTokenizer.from_pretrained(prose_model)
    long_doc = sql(out, "SELECT doc_id, text FROM examples ORDER BY length(text) DESC LIMIT 1")[0]
    positions = sql(out, f"SELECT position, token_id FROM token_scores WHERE doc_id = '{long_doc[0]}' ORDER BY 1")
    ids = tokenizer(long_doc[1], add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * 64
    assert positions == [(i + 1, token) for i, token in enumerate(ids)]  # BOS is position 0; every token scored
    per_doc = sql(
        out,
        "SELECT e.n_tokens, count(t.position) FROM examples e JOIN token_scores t USING (doc_id) "
        "GROUP BY e.doc_id, e.n_tokens",
    )
    assert all(n == counted for n, counted in per_doc)


def test_domain_model_prefers_its_domain(run):
    out, _ = run
    means = dict(sql(out, "SELECT source, avg(nll_model) FROM examples GROUP BY source"))
    assert means["prose"] < means["code"]


def test_derived_columns_equal_their_formulas(run):
    out, _ = run
    rows = sql(
        out,
        """
        SELECT e.*, t.s_model, t.s_early, t.n FROM examples e JOIN (
          SELECT doc_id, sum(nll_model) s_model, sum(nll_early) s_early, count(*) n FROM token_scores GROUP BY 1
        ) t USING (doc_id)""",
    )
    con = catalog.connect(str(out))
    names = [d[0] for d in con.execute("SELECT * FROM examples LIMIT 0").description] + ["s_model", "s_early", "n"]
    con.close()
    multibyte = 0
    for values in rows:
        r = dict(zip(names, values))
        assert r["n_tokens"] == r["n"]
        assert math.isclose(r["nll_model"], r["s_model"] / r["n"], rel_tol=1e-9)
        n_bytes = len(r["text"].encode("utf-8"))
        assert r["n_bytes"] == n_bytes
        assert math.isclose(r["bpb_model"], r["s_model"] / (math.log(2) * n_bytes), rel_tol=1e-9)
        multibyte += n_bytes != len(r["text"])
        assert math.isclose(r["excess_loss"], r["nll_model"] - r["nll_reference"], abs_tol=1e-12)
        assert math.isclose(r["novelty"], r["nll_model"] - r["nll_finetuned"], abs_tol=1e-12)
        assert math.isclose(r["learnability"], (r["nll_model"] - r["nll_finetuned"]) / r["nll_model"], rel_tol=1e-9)
        p0, p1, pn = math.exp(r["nll_model"]), math.exp(r["nll_early"]), math.exp(r["nll_late"])
        assert math.isclose(r["learning_percentage"], (p0 - p1) / (p0 - pn), rel_tol=1e-9)
    assert multibyte > 0  # the Spanish documents make bytes differ from characters


def test_bad_inputs_are_rejected_with_reasons_and_counts_are_conserved(run, mixed_corpus):
    out, manifest = run
    _, expected = mixed_corpus
    got = {(Path(path).name, row): reason for path, row, reason in sql(out, "SELECT input, row, reason FROM rejected")}
    assert got == expected
    assert set(got.values()) <= set(REJECT_REASONS)  # every reason is a documented one
    counts = manifest["counts"]
    assert counts["read"] == counts["scored"] + counts["rejected"] == 6 + 5 + 3 + 1 + 9
    assert counts["rejected_by_reason"] == {
        reason: list(expected.values()).count(reason) for reason in set(expected.values())
    }
    assert sql(out, "SELECT record FROM rejected WHERE reason = 'invalid_utf8'")[0][0] == (
        '{"id": "b7", "text": "caf\\xe9 latin-1"}'
    )


def test_sources_ids_and_manifest(run, prose_model):
    out, manifest = run
    sources = dict(sql(out, "SELECT source, count(*) FROM examples GROUP BY 1"))
    assert sources == {"prose": 6, "code": 5, "spanish": 3, "story": 1, "web": 1}  # web: the one-token "a"
    story_id = sql(out, "SELECT doc_id FROM examples WHERE source = 'story'")[0][0]
    assert len(story_id) == 16  # no id field: a hash of path and row
    assert manifest["roles"]["model"]["weights_sha256"] and list(manifest["roles"]) == [
        "model",
        "reference",
        "finetuned",
        "early",
        "late",
    ]
    assert (out / "manifest.json").is_file()


def test_moved_run_directory_still_opens(run, tmp_path):
    import shutil

    out, _ = run
    moved = shutil.copytree(out, tmp_path / "elsewhere")
    assert sql(moved, "SELECT count(*) FROM examples") == sql(out, "SELECT count(*) FROM examples")


def test_multi_processing_runner_gives_the_same_losses(run, tmp_path, mixed_corpus, prose_model):
    out, _ = run
    inputs, _ = mixed_corpus
    cfg = ScoreConfig(
        inputs=(f"{inputs}/prose.jsonl",), out=str(tmp_path / "mp"), model=prose_model, max_length=64, context=16
    )
    manifest = score.run(cfg, ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert manifest["counts"]["scored"] == 6
    mp = dict(sql(tmp_path / "mp", "SELECT doc_id, nll_model FROM examples"))
    ref = dict(sql(out, "SELECT doc_id, nll_model FROM examples WHERE source = 'prose'"))
    assert mp.keys() == ref.keys()
    assert all(math.isclose(mp[k], ref[k], rel_tol=1e-6) for k in mp)
