"""The same numbers as the tools users compare with: lm-evaluation-harness's rolling
log-likelihoods with `--windows rolling`, and the tokens TRL's SFTTrainer trains on."""

import math

import pytest
import torch
from transformers import AutoTokenizer

from refsift import catalog, cli
from refsift.kernels.windows import plan_windows
from tests.conftest import held_out, write_jsonl


@pytest.mark.parametrize("n, max_length, first", [(2, 4, 1), (5, 4, 1), (9, 4, 1), (10, 3, 1), (40, 7, 1), (12, 5, 4)])
def test_rolling_windows_predict_each_position_once_from_at_most_max_length_tokens(n, max_length, first):
    windows = plan_windows(n, max_length, None, first=first)
    scored = [p for w in windows for p in range(w.start + w.score_from, w.end)]
    assert scored == list(range(first, n))
    for w in windows:
        assert w.end - 1 - w.start <= max_length  # the tokens fed (the last one is only predicted)
        assert w.end - w.start - w.score_from <= max_length
    # disjoint blocks: every block but the last predicts max_length tokens, a full one from one token of context
    assert all(w.end - w.start - w.score_from == max_length for w in windows[:-1])
    assert all(w.score_from == 1 for w in windows[1:-1])


def test_rolling_windows_equal_lm_evaluation_harness(prose_model, tmp_path):
    lm_eval = pytest.importorskip("lm_eval.models.huggingface")
    from lm_eval.api.instance import Instance

    texts = [t[:1500] for t in held_out("prose", 4, start=140)] + ["A short one."]
    write_jsonl(tmp_path / "d.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    lm = lm_eval.HFLM(pretrained=prose_model, device="cpu", batch_size=4, max_length=48)
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    expected = lm.loglikelihood_rolling(requests, disable_tqdm=True)
    totals = {}
    for windows in ("rolling", "context"):
        out = tmp_path / windows
        assert cli.main(["score", "--input", str(tmp_path / "d.jsonl"), "--model", prose_model, "--out", str(out),
                         "--max-length", "48", "--context", "8", "--windows", windows]) == 0  # fmt: skip
        rows = catalog.query(str(out), "SELECT doc_id, nll_model * n_tokens, n_tokens FROM examples ORDER BY doc_id")[1]
        totals[windows] = [-total for _, total, _ in rows]
        assert max(n for *_, n in rows) > 3 * 48  # several windows
    assert totals["rolling"] == pytest.approx(expected, rel=1e-5)
    # one window: the same numbers either way; several: other windows, other numbers
    assert totals["context"][-1] == pytest.approx(totals["rolling"][-1], rel=1e-6)
    assert all(abs(c - r) > 2e-4 * abs(r) for c, r in zip(totals["context"][:-1], totals["rolling"][:-1]))


def trl_prepared(model: str, records: list[dict], tmp_path) -> list[dict]:
    """TRL's own SFTTrainer preparation of `records`: input_ids and completion_mask."""
    trl = pytest.importorskip("trl")
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = trl.SFTConfig(output_dir=str(tmp_path / "trl"), report_to=[], use_cpu=True, bf16=False)
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model),
        args=args,
        train_dataset=datasets.Dataset.from_list(records),
        processing_class=AutoTokenizer.from_pretrained(model),
    )
    return list(trainer.train_dataset)


def scored_tokens(run, doc_id: str) -> tuple[list[int], dict[int, float]]:
    """A one-window document's token ids and its scored positions' losses."""
    [(ids, nll)] = catalog.query(str(run), f"SELECT token_ids, nll_model FROM tokens WHERE doc_id = '{doc_id}'")[1]
    return ids, {i: x for i, x in enumerate(nll) if x is not None}


def forward_nll(model_dir: str, ids: list[int]) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return [math.nan] + [-logp[i - 1, ids[i]].item() for i in range(1, len(ids))]


PROMPTS = ["The capital of France is ", "Question: what follows?\n\n", "Say it twice:", "", "Write code.\n"]


def test_instruction_data_scores_exactly_what_trl_trains_on(chat_model, tmp_path):
    answers = held_out("code", len(PROMPTS), start=160)
    records = [{"prompt": p, "completion": a[:160]} for p, a in zip(PROMPTS, answers)]
    write_jsonl(tmp_path / "pairs.jsonl", [{"id": f"q{i}", **r} for i, r in enumerate(records)])
    out = tmp_path / "run"
    assert cli.main(["score", "--input", str(tmp_path / "pairs.jsonl"), "--model", chat_model, "--out", str(out),
                     "--prompt-field", "prompt", "--text-field", "completion"]) == 0  # fmt: skip
    eos = AutoTokenizer.from_pretrained(chat_model).eos_token_id
    for i, prepared in enumerate(trl_prepared(chat_model, records, tmp_path)):
        ids, nll = scored_tokens(out, f"q{i}")
        assert ids == prepared["input_ids"] and ids[-1] == eos  # the same sequence, EOS included
        trained = {p for p, label in enumerate(prepared["labels"]) if label != -100 and p > 0}
        assert set(nll) == trained, records[i]["prompt"]
        expected = forward_nll(chat_model, ids)
        assert [nll[p] for p in sorted(trained)] == pytest.approx([expected[p] for p in sorted(trained)], rel=1e-4)
    [(text, n_bytes)] = catalog.query(str(out), "SELECT text, n_bytes FROM examples WHERE doc_id = 'q2'")[1]
    assert text == PROMPTS[2] + records[2]["completion"]  # the record's text; the EOS is not text
    assert n_bytes == len(records[2]["completion"].encode())


def test_chats_score_each_assistant_turn_as_trl_trains_its_prompt_completion_record(chat_model, tmp_path):
    questions, answers = held_out("prose", 3, start=160), held_out("code", 3, start=160)
    chats = [
        [
            {"role": "user", "content": q[:80]},
            {"role": "assistant", "content": a[:90]},
            {"role": "user", "content": " and then? "},
            {"role": "assistant", "content": " " + a[90:160]},
        ]  # fmt: skip
        for q, a in zip(questions, answers)
    ]
    write_jsonl(tmp_path / "chats.jsonl", [{"id": f"c{i}", "messages": m} for i, m in enumerate(chats)])
    out = tmp_path / "run"
    assert cli.main(["score", "--input", str(tmp_path / "chats.jsonl"), "--model", chat_model, "--out", str(out),
                     "--messages-field", "messages"]) == 0  # fmt: skip
    turns = [(c, {"prompt": m[:t], "completion": [m[t]]}) for c, m in enumerate(chats) for t in (1, 3)]
    prepared = trl_prepared(chat_model, [r for _, r in turns], tmp_path)
    trained: dict[int, set] = {}
    for (c, _), row in zip(turns, prepared):
        ids, _ = scored_tokens(out, f"c{c}")
        assert ids[: len(row["input_ids"])] == row["input_ids"]  # each turn's record is a prefix of the chat
        trained.setdefault(c, set()).update(p for p, label in enumerate(row["labels"]) if label != -100)
    for c in range(len(chats)):
        ids, nll = scored_tokens(out, f"c{c}")
        assert set(nll) == trained[c]
        expected = forward_nll(chat_model, ids)
        assert [nll[p] for p in sorted(nll)] == pytest.approx([expected[p] for p in sorted(nll)], rel=1e-4)


def test_cosine_schedule_is_transformers_cosine_with_warmup():
    from transformers import get_cosine_schedule_with_warmup

    from refsift.kernels.training import lr_factor

    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=3, num_training_steps=20)
    theirs = []
    for _ in range(20):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert [lr_factor(s, 20, 3, "cosine") for s in range(20)] == pytest.approx(theirs, abs=1e-12)
    assert [lr_factor(s, 20, 0, "constant") for s in range(20)] == [1.0] * 20
