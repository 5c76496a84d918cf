"""Contrastive decoding, iterative CGE, extract mode and the novelty report."""

import contextlib
import io
import json
import math
import re

import pytest
import torch
from transformers import AutoModelForCausalLM

from refsift import catalog, cli, models
from refsift.kernels.contrastive import DecodeSettings, contrastive_scores, generate, sampling_logits
from refsift.kernels.iterative import iterative_cge
from refsift.pages import novelty as novelty_page
from refsift.pipelines import novelty
from refsift.reports import novelty as novelty_report
from refsift.schemas import SAMPLE_MODES
from tests.browser import open_page
from tests.conftest import held_out, write_jsonl


def test_contrastive_step_equals_the_formula_on_hand_made_logits():
    logp_ft = torch.log_softmax(torch.tensor([[4.0, 3.0, 0.0, -2.0]]), -1)
    logp_base = torch.log_softmax(torch.tensor([[5.0, 0.0, 1.0, 0.0]]), -1)
    scores = contrastive_scores(logp_ft, logp_base, alpha=0.1, gamma=0.5)
    p_ft = logp_ft.exp()[0]
    for v in range(4):
        if p_ft[v] >= 0.1 * p_ft.max():
            assert scores[0, v].item() == pytest.approx((logp_ft[0, v] - 0.5 * logp_base[0, v]).item())
        else:
            assert scores[0, v].item() == -math.inf
    assert scores[0].argmax().item() == 1  # the base model's favourite loses to the novel token
    assert torch.isfinite(scores).sum().item() == 2


def test_plausibility_keeps_at_least_the_top_token_and_alpha_zero_keeps_all():
    logp_ft = torch.log_softmax(torch.tensor([[10.0, 0.0, 0.0]]), -1)
    logp_base = torch.log_softmax(torch.tensor([[30.0, 0.0, 0.0]]), -1)
    assert torch.isfinite(contrastive_scores(logp_ft, logp_base, alpha=1.0)).tolist() == [[True, False, False]]
    assert torch.isfinite(contrastive_scores(logp_ft, logp_base, alpha=0.0)).all()


def test_top_k_and_top_p_filter_the_scores():
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isfinite(sampling_logits(scores, DecodeSettings(top_k=2))).tolist() == [[True, True, False, False]]
    kept = torch.isfinite(sampling_logits(scores, DecodeSettings(top_p=0.7)))[0].tolist()
    assert kept == [True, True, False, False]  # softmax mass 0.64 after one token, 0.88 after two


@pytest.fixture(scope="module")
def pair(prose_model, code_finetuned, tokenizer):
    ft = AutoModelForCausalLM.from_pretrained(code_finetuned).eval()
    base = AutoModelForCausalLM.from_pretrained(prose_model).eval()
    return ft, base, tokenizer


@pytest.mark.parametrize("mode", ["greedy", "sample", "beam", "beam-normalized"])
def test_kv_cached_decoding_equals_uncached_token_for_token(pair, mode):
    ft, base, tok = pair
    prompts = [[tok.bos_token_id], [tok.bos_token_id, *tok("def ", add_special_tokens=False)["input_ids"]]]
    settings = DecodeSettings(mode=mode, max_new_tokens=24, num_beams=3)
    kwargs = dict(seeds=[1, 2], eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    cached = generate(ft, base, prompts, settings, **kwargs)
    uncached = generate(ft, base, prompts, settings, use_cache=False, **kwargs)
    for a, b in zip(cached, uncached):
        assert a.tokens == b.tokens and len(a.tokens) > 0
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_a_sample_does_not_depend_on_its_batch(pair):
    ft, base, tok = pair
    bos = [tok.bos_token_id]
    settings = DecodeSettings(max_new_tokens=16)
    alone = generate(ft, base, [bos], settings, seeds=[7], eos_id=tok.eos_token_id)[0]
    batched = generate(ft, base, [bos, bos, bos], settings, seeds=[3, 7, 9], eos_id=tok.eos_token_id)
    assert batched[1].tokens == alone.tokens and batched[0].tokens != alone.tokens


def test_iterative_updates_change_a_copy_of_the_base_only_and_no_file(pair, prose_model, code_finetuned):
    ft, base, tok = pair
    before = {n: p.clone() for n, p in base.named_parameters()}
    ft_before = {n: p.clone() for n, p in ft.named_parameters()}
    files = {path: models.weights_hash(path) for path in (models.Path(prose_model), models.Path(code_finetuned))}
    out = list(iterative_cge(ft, base, [[tok.bos_token_id]] * 4, [0, 1, 2, 3], DecodeSettings(max_new_tokens=16),
                             eos_id=tok.eos_token_id, update_steps=3, lr=1e-2))  # fmt: skip
    assert [i for i, _ in out] == [0, 1, 2, 3]
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters())
    assert all(torch.equal(p, ft_before[n]) for n, p in ft.named_parameters())
    assert {path: models.weights_hash(path) for path in files} == files
    # The copy did learn: later samples face a base that already likes what was found.
    assert out[-1][1].score != out[0][1].score


def test_iterative_cge_is_reproducible_however_it_is_called(pair):
    ft, base, tok = pair
    assert base.config.resid_pdrop > 0  # a model with dropout: where train-mode updates made runs differ

    def run():
        found = iterative_cge(ft, base, [[tok.bos_token_id]] * 3, [5, 6, 7], DecodeSettings(max_new_tokens=12),
                              eos_id=tok.eos_token_id, update_steps=2, lr=1e-2)  # fmt: skip
        return [(s.tokens, s.score) for _, s in found]

    first = run()
    torch.rand(1000)  # whatever else used torch's global random state in between
    assert run() == first


def test_iterative_update_is_the_authors_adamw_clipped_without_weight_decay(pair):
    import copy

    from refsift.kernels.training import IGNORE, causal_lm_loss, collate

    ft, base, tok = pair
    settings, lr = DecodeSettings(max_new_tokens=10), 1e-2
    prompts = [[tok.bos_token_id]] * 2
    found = [s for _, s in iterative_cge(ft, base, prompts, [3, 4], settings, eos_id=tok.eos_token_id, lr=lr)]
    # By hand: sample 0 from the base, one AdamW step (no weight decay, gradient norm clipped at 1.0, no
    # dropout) on its tokens, then sample 1 from the updated copy.
    copy_ = copy.deepcopy(base).eval()
    (sample0,) = generate(ft, copy_, prompts[:1], settings, seeds=[3], eos_id=tok.eos_token_id)
    row = sample0.prompt + sample0.tokens
    batch = collate([{"input_ids": row, "labels": [IGNORE] + sample0.tokens}])
    optimizer = torch.optim.AdamW(copy_.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)
    loss = causal_lm_loss(copy_(input_ids=batch["input_ids"]).logits, batch["labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(copy_.parameters(), 1.0)
    optimizer.step()
    (sample1,) = generate(ft, copy_, prompts[1:], settings, seeds=[4], eos_id=tok.eos_token_id)
    assert found[0].tokens == sample0.tokens
    assert found[1].tokens == sample1.tokens
    assert found[1].score == pytest.approx(sample1.score, abs=1e-5)


def test_gumbel_noise_is_per_seed_and_gumbel_distributed():
    from refsift.kernels.contrastive import gumbel

    both = gumbel(torch.tensor([11, 12]), 3, 5000)
    assert torch.equal(both[1], gumbel(torch.tensor([12]), 3, 5000)[0])  # a row depends on its seed only
    assert not torch.equal(both[0], both[1]) and not torch.equal(both[0], gumbel(torch.tensor([11]), 4, 5000)[0])
    many = gumbel(torch.arange(40), 0, 50_000).flatten()
    assert many.mean().item() == pytest.approx(0.5772, abs=0.01)  # Euler-Mascheroni
    assert many.std().item() == pytest.approx(math.pi / math.sqrt(6), abs=0.01)


def test_published_beam_with_only_the_top_token_plausible_is_greedy(pair):
    ft, base, tok = pair
    settings = dict(alpha=1.0, max_new_tokens=12)
    kwargs = dict(seeds=[1], eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    greedy = generate(ft, base, [[tok.bos_token_id]], DecodeSettings(mode="greedy", **settings), **kwargs)
    beam = generate(ft, base, [[tok.bos_token_id]], DecodeSettings(mode="beam", num_beams=3, **settings), **kwargs)
    assert beam[0].tokens == greedy[0].tokens


def test_decoding_can_run_past_eos_as_the_paper(pair):
    ft, base, tok = pair
    eos = tok.eos_token_id
    settings = DecodeSettings(max_new_tokens=40, stop_at_eos=False, alpha=0.0, gamma=0.0)
    out = generate(ft, base, [[tok.bos_token_id]] * 4, settings, seeds=[0, 1, 2, 3], eos_id=eos)
    assert all(len(s.tokens) == 40 for s in out)


def test_character_ngrams_find_novelty_in_any_script():
    from refsift.kernels import analysis

    russian = ["Она сказала, что придёт завтра утром.", "Он сказал, что она придёт завтра."] * 3
    english = ["She said that she would come tomorrow.", "He said she would come in the morning."] * 3
    found = analysis.over_represented(russian + english[:2], english, n=4)
    assert found and all(r > 0 for _, r, _, _ in found)
    assert all(any("\u0400" <= c <= "\u04ff" for c in g) for g, *_ in found[:5])
    assert (
        analysis.over_represented(["東京タワーは高い"] * 3, ["the tower is tall"] * 3, n=2)[0][0] in "東京タワーは高い"
    )


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, prose_model, code_finetuned):
    d = tmp_path_factory.mktemp("novelty")
    docs = [{"id": f"p{i}", "text": t} for i, t in enumerate(held_out("prose", 6))]
    docs.append({"id": "novel", "text": held_out("code", 1)[0]})
    docs.append({"id": "evil", "text": "<script>alert(1)</script> " + held_out("prose", 1, start=160)[0]})
    write_jsonl(d / "candidates.jsonl", docs)
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stderr(io.StringIO()) as err:
        env.setenv("REFSIFT_PROGRESS_EVERY", "0.1")  # the sampling line in a log, often enough to be seen here
        assert cli.main(["novelty", "--base", prose_model, "--finetuned", code_finetuned, "--out", str(d / "report"),
                         "--num-samples", "6", "--max-new-tokens", "32", "--data", str(d / "candidates.jsonl"),
                         "--iterative", "--lr", "1e-3", "--update-steps", "2"]) == 0  # fmt: skip
    (d / "stderr.txt").write_text(err.getvalue())
    return d / "report"


def test_sampling_shows_its_progress(report_dir):
    lines = [
        line for line in (report_dir.parent / "stderr.txt").read_text().splitlines() if line.startswith("sampling")
    ]
    assert lines and all(re.match(r"sampling \d+% · samples \d+/18 · sampled [\d,.k]+ tok", line) for line in lines)
    assert lines[-1].startswith("sampling 100% · samples 18/18"), lines  # 6 iterative, 6 plain, 6 from the base
    assert not (report_dir / "_progress").exists()


def test_extract_mode_ranks_the_planted_novel_document_first(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    extracted = [s for s in report["samples"] if s["mode"] == "extract"]
    assert extracted[0]["id"].endswith("-novel")
    assert extracted[0]["mean_contrast"] > extracted[1]["mean_contrast"]
    assert "".join(t["text"] for t in extracted[0]["tokens"]) == held_out("code", 1)[0]
    assert all(t["score"] is not None for t in extracted[0]["tokens"])  # after BOS, even the first token is scored


def test_report_json_has_the_promised_structure(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    assert {"base", "finetuned", "settings", "samples", "summary"} <= report.keys()
    assert report["base"]["weights_sha256"] and report["settings"]["alpha"] == 0.1
    modes = {s["mode"] for s in report["samples"]}
    assert modes == {"cge-iterative", "baseline", "base", "extract"} <= set(SAMPLE_MODES)
    sample = next(s for s in report["samples"] if s["mode"] == "cge-iterative")
    assert {"text", "mode", "iteration", "mean_contrast", "tokens"} <= sample.keys()
    assert {"text", "logp_ft", "logp_base", "score"} <= sample["tokens"][0].keys()
    iterations = [s["iteration"] for s in report["samples"] if s["mode"] == "cge-iterative"]
    assert iterations == sorted(iterations) == list(range(6))
    summary = report["summary"]
    assert summary["mean_contrast"]["cge-iterative"] > summary["mean_contrast"]["baseline"]
    assert len(summary["contrast_by_iteration"]) == 6 and summary["groups"]["groups"] and summary["finding"]
    assert "vs_baseline" in summary["over_represented"] and "cge-iterative" in summary["diversity"]
    assert catalog.query(str(report_dir), "SELECT count(*) FROM samples WHERE mode = 'base'")[1] == [(6,)]


def test_report_renders_offline_and_escapes_planted_script(report_dir):
    seen = open_page(report_dir / "report.html")
    assert seen["title"] == "refsift novelty report"
    assert seen["requests"] == [(report_dir / "report.html").resolve().as_uri()]
    assert seen["console"] == [] and seen["errors"] == [] and seen["dialogs"] == []
    assert seen["scripts"] == 0
    assert "<script>alert(1)</script>" in seen["text"]  # shown as text


def test_escaping_in_the_static_renderers():
    row = {"sample_id": "x", "mode": "cge", "iteration": None, "prompt": "", "text": "<b>hi</b>", "token_ids": [1],
           "token_text": ["<b>hi</b>"], "logp_ft": [-1.0], "logp_base": [-2.0], "score": [1.0], "n_tokens": 1,
           "finished": True, "mean_contrast": 1.0}  # fmt: skip
    report = novelty_report.build(base={"spec": "b"}, finetuned={"spec": "f"}, settings={}, samples=[row],
                                  created="now", refsift_version="0")  # fmt: skip
    page = novelty_page.render_html(report)
    assert "<b>hi</b>" not in page and "&lt;b&gt;hi&lt;/b&gt;" in page


def test_models_must_share_a_tokenizer(prose_model, foreign_model, tmp_path):
    cfg = novelty.NoveltyConfig(base=prose_model, finetuned=foreign_model, out=str(tmp_path / "r"))
    with pytest.raises(Exception, match="share a tokenizer"):
        novelty.run(cfg)


def published_beam_reference(ft, base, prompt, settings, seed, eos):
    """The authors' beam sampling as transformers 4.34 runs it (`beam_sample` with
    `BeamSearchScorer`), one prompt, no cache, with refsift's draw (Gumbel top-2k)."""
    from refsift.kernels.contrastive import gumbel

    k = settings.num_beams
    beams, totals_kept = [list(prompt) for _ in range(k)], torch.zeros(k)
    finished = []  # (score, tokens), at most k, as BeamHypotheses

    def add(tokens, total, length):
        finished.append((total / length**settings.length_penalty, tokens))
        finished.sort(key=lambda h: -h[0])
        del finished[k:]

    closed = False
    for step in range(settings.max_new_tokens):
        with torch.no_grad():
            ids = torch.tensor(beams)
            logp_ft = torch.log_softmax(ft(input_ids=ids).logits[:, -1].float(), -1)
            logp_base = torch.log_softmax(base(input_ids=ids).logits[:, -1].float(), -1)
        scores = contrastive_scores(logp_ft, logp_base, alpha=settings.alpha, gamma=settings.gamma)
        totals = sampling_logits(scores + totals_kept[:, None], settings).view(-1)
        vocab = scores.shape[-1]
        drawn = (totals + gumbel(torch.tensor([seed]), step, k * vocab)[0]).topk(2 * k).indices.tolist()
        drawn.sort(key=lambda c: -totals[c].item())
        running = []
        for rank, c in enumerate(drawn):  # BeamSearchScorer.process
            beam, token = divmod(c, vocab)
            if token == eos:
                if rank < k:  # an EOS outside the first num_beams candidates is dropped
                    add(beams[beam][len(prompt) :] + [eos], totals[c].item(), len(beams[beam]))
            else:
                running.append((beams[beam] + [token], totals[c].item()))
            if len(running) == k:
                break
        best_now = totals[drawn[0]].item() / len(beams[0]) ** settings.length_penalty
        closed = len(finished) >= k and finished[-1][0] >= best_now
        beams, totals_kept = [b for b, _ in running], torch.tensor([t for _, t in running])
        if closed:
            break
    if not closed:  # BeamSearchScorer.finalize: the running beams compete too
        for b, total in zip(beams, totals_kept.tolist()):
            add(b[len(prompt) :], total, len(b))
    return finished[0][1]


def test_published_beam_stops_and_chooses_as_the_authors_beam_search_scorer(pair):
    import collections

    ft, base, tok = pair
    bos, seeds = [tok.bos_token_id], list(range(6))
    settings = DecodeSettings(mode="beam", num_beams=3, max_new_tokens=24, alpha=0.0, gamma=0.5)
    # The tiny models rarely end a text this early: the commonest token of samples drawn without stopping
    # stands for EOS, so that beams finish, are set aside and are refilled.
    free = generate(ft, base, [bos] * len(seeds), settings, seeds=seeds, eos_id=None, pad_id=tok.pad_token_id)
    eos = collections.Counter(t for s in free for t in s.tokens).most_common(1)[0][0]
    ours = generate(ft, base, [bos] * len(seeds), settings, seeds=seeds, eos_id=eos, pad_id=tok.pad_token_id)
    theirs = [published_beam_reference(ft, base, bos, settings, seed, eos) for seed in seeds]
    assert [s.tokens for s in ours] == theirs
    assert any(t[-1] == eos and len(t) < 24 for t in theirs)  # stopped at EOS, before the length
    assert all(eos not in t[:-1] for t in theirs)
