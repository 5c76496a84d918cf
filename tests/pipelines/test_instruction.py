"""Scoring as the papers do: a BOS prefix before every document, and instruction data whose
prompt (or user turns) is context while only the response (or assistant turns) is scored."""

import json
import math
import re
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from refsift import catalog, cli
from refsift.kernels import training
from refsift.pipelines import finetune
from tests.conftest import held_out, write_jsonl


def query(run, sql):
    return catalog.query(str(run), sql)[1]


def logprobs(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)


def test_every_token_after_bos_is_scored_as_transformers_computes_it(tmp_path, prose_model):
    docs = [t[:800] for t in held_out("prose", 3)] + ["Hi"]  # one window each, for the one-pass check
    write_jsonl(tmp_path / "d.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)])
    for prefix in ("auto", "none"):
        out = tmp_path / prefix
        assert cli.main(["score", "--input", str(tmp_path / "d.jsonl"), "--model", prose_model, "--out", str(out),
                         "--prefix", prefix]) == 0  # fmt: skip
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["settings"]["prefix"] == prefix
        tok = AutoTokenizer.from_pretrained(prose_model)
        for _, text, n_tokens, nll, n_bytes in query(
            out, "SELECT doc_id, text, n_tokens, nll_model, n_bytes FROM examples ORDER BY doc_id"
        ):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            if prefix == "auto":  # independently: [bos] + document, every document token scored
                seq, first = [tok.bos_token_id, *ids], 1
                assert n_bytes == len(text.encode())
            else:
                seq, first = ids, 1
            logp = logprobs(prose_model, seq)
            expected = [-logp[i - 1, seq[i]].item() for i in range(first, len(seq))]
            assert n_tokens == len(expected) == (len(ids) if prefix == "auto" else len(ids) - 1)
            assert nll == pytest.approx(sum(expected) / len(expected), rel=1e-5)


@pytest.fixture(scope="module")
def instruction_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft")
    questions = held_out("prose", 6, start=100)
    answers = held_out("code", 6, start=100)
    records = [
        {"id": f"q{i}", "prompt": q[:300] + "\n", "response": a[:400]}
        for i, (q, a) in enumerate(zip(questions, answers))
    ]
    write_jsonl(d / "pairs.jsonl", records)
    chats = [
        {
            "id": f"c{i}",
            "messages": [
                {"role": "user", "content": q[:200]},
                {"role": "assistant", "content": a[:200]},
                {"role": "user", "content": "and then?"},
                {"role": "assistant", "content": a[200:350]},
            ],
        }  # fmt: skip
        for i, (q, a) in enumerate(zip(questions, answers))
    ]
    write_jsonl(d / "chats.jsonl", chats)
    return d, records, chats


def test_prompt_field_scores_the_response_given_the_prompt(instruction_data, prose_model, tmp_path):
    d, records, _ = instruction_data
    out = tmp_path / "run"
    assert cli.main(["score", "--input", str(d / "pairs.jsonl"), "--model", prose_model, "--out", str(out),
                     "--prompt-field", "prompt", "--text-field", "response"]) == 0  # fmt: skip
    tok = AutoTokenizer.from_pretrained(prose_model)
    rows = query(out, "SELECT doc_id, prompt, text, n_tokens, nll_model, n_bytes FROM examples ORDER BY doc_id")
    for (doc_id, prompt, text, n_tokens, nll, n_bytes), record in zip(rows, records):
        assert prompt == record["prompt"] and text == record["prompt"] + record["response"]
        # as TRL: prompt + response + EOS as one sequence, no prefix; the response and the EOS scored
        seq = tok(record["prompt"] + record["response"] + tok.eos_token)["input_ids"]
        n_prompt = len(tok(record["prompt"])["input_ids"])  # the prompts end in a newline: no merged token
        logp = logprobs(prose_model, seq)
        expected = [-logp[i - 1, seq[i]].item() for i in range(n_prompt, len(seq))]
        assert n_tokens == len(seq) - n_prompt and n_bytes == len(record["response"].encode())
        assert nll == pytest.approx(sum(expected) / len(expected), rel=1e-5)
        # the prompt's tokens are kept, unscored, so selections and reports can show them
        ((token_ids, scored),) = query(
            out, f"SELECT token_ids, list_count(nll_model) FROM tokens WHERE doc_id = '{doc_id}'"
        )
        assert token_ids == seq and scored == n_tokens
    spans = query(out, "SELECT min(char_start), max(char_end) FROM token_scores WHERE doc_id = 'q0'")[0]
    assert spans == (len(records[0]["prompt"]), len(records[0]["prompt"] + records[0]["response"]))


def test_messages_field_scores_assistant_turns_only(instruction_data, chat_model, prose_model, tmp_path, capsys):
    d, _, chats = instruction_data
    out = tmp_path / "run"
    assert cli.main(["score", "--input", str(d / "chats.jsonl"), "--model", chat_model, "--out", str(out),
                     "--messages-field", "messages"]) == 0  # fmt: skip
    tok = AutoTokenizer.from_pretrained(chat_model)
    for doc_id, text in query(out, "SELECT doc_id, text FROM examples"):
        chat = next(c for c in chats if c["id"] == doc_id)
        assert text == tok.apply_chat_template(chat["messages"], tokenize=False)
    for chat in chats:  # the scored characters are the assistant turns' (a merged boundary character aside)
        text = tok.apply_chat_template(chat["messages"], tokenize=False)
        turns = [m["content"] + "<|im_end|>\n" for m in chat["messages"] if m["role"] == "assistant"]
        wanted = set()
        for turn in turns:
            at = text.index(turn, max(wanted, default=0))
            wanted |= set(range(at, at + len(turn)))
        spans = query(out, f"SELECT char_start, char_end FROM token_scores WHERE doc_id = '{chat['id']}'")
        covered = {c for a, b in spans for c in range(a, b)}
        assert wanted <= covered and all(set(range(a, b)) & wanted for a, b in spans)
    assert cli.main(["score", "--input", str(d / "chats.jsonl"), "--model", prose_model, "--out",
                     str(tmp_path / "no"), "--messages-field", "messages"]) == 2  # fmt: skip
    assert "has no chat template" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sft_selection(tmp_path_factory, instruction_data, chat_model):
    d, _, _ = instruction_data
    base = tmp_path_factory.mktemp("sft-sel")
    for name, args in (("pairs", ["--prompt-field", "prompt", "--text-field", "response"]),
                       ("chats", ["--messages-field", "messages"])):  # fmt: skip
        assert cli.main(["score", "--input", str(d / f"{name}.jsonl"), "--model", chat_model, "--out",
                         str(base / f"run-{name}"), *args]) == 0  # fmt: skip
        assert cli.main(["select", str(base / f"run-{name}"), "--out", str(base / f"mix-{name}"), "--by", "nll_model",
                         "--budget", "4"]) == 0  # fmt: skip
    return base


def test_exports_label_only_responses_and_carry_trl_formats(sft_selection, instruction_data):
    _, records, chats = instruction_data
    rows = datasets.load_dataset("parquet", data_files=str(sft_selection / "mix-pairs/data/*.parquet"), split="train")
    scored = dict(catalog.query(str(sft_selection / "run-pairs"), "SELECT doc_id, n_tokens FROM examples")[1])
    for row in rows:
        labelled = [i for i, label in enumerate(row["labels"]) if label != -100]
        assert len(labelled) == scored[row["doc_id"]]  # every response token, no prompt token
        assert labelled == list(range(len(row["labels"]) - len(labelled), len(row["labels"])))
    sft = datasets.load_dataset("json", data_files=str(sft_selection / "mix-pairs/sft/*.jsonl"), split="train")
    by_id = {r["id"]: r for r in records}
    assert len(sft) == 4 and set(sft["doc_id"]) == set(rows["doc_id"])
    for r in sft:
        assert r["prompt"] == by_id[r["doc_id"]]["prompt"] and r["completion"] == by_id[r["doc_id"]]["response"]
    chat_sft = datasets.load_dataset("json", data_files=str(sft_selection / "mix-chats/sft/*.jsonl"), split="train")
    assert len(chat_sft) == 2 * 4  # one prompt-completion record per assistant turn
    for r in chat_sft:  # the conversation up to an assistant turn, and the turn
        messages = next(c for c in chats if c["id"] == r["doc_id"])["messages"]
        turn = len(r["prompt"])
        assert r["prompt"] == messages[:turn] and r["completion"] == [messages[turn]]
        assert messages[turn]["role"] == "assistant"


def test_per_cluster_embeds_pairs_as_small2large_does(sft_selection, instruction_data, tmp_path, monkeypatch):
    from refsift.kernels import analysis

    embedded = []
    embed = analysis.embed
    monkeypatch.setattr(analysis, "embed", lambda texts, **kw: (embedded.extend(texts), embed(texts, **kw))[1])
    out = tmp_path / "clustered"
    assert cli.main(["select", str(sft_selection / "run-pairs"), "--out", str(out), "--by", "nll_model",
                     "--budget", "50%", "--per-cluster", "2"]) == 0  # fmt: skip
    _, records, _ = instruction_data
    expected = [f"Instruction: {r['prompt'].strip()} Response: {r['response'].strip()}" for r in records]
    assert embedded == expected  # in doc_id order, q0 ... q5
    clusters = pq.read_table(out / "clusters.parquet").to_pylist()
    assert [c["doc_id"] for c in clusters] == [r["id"] for r in records]
    assert {c["cluster"] for c in clusters} == {"cluster0", "cluster1"}


def test_finetune_trains_on_responses_only(sft_selection, chat_model):
    rows = finetune.load_export(str(sft_selection / "mix-pairs"))
    batch = training.collate(rows)
    model = AutoModelForCausalLM.from_pretrained(chat_model).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits, -1)
    response_only = [
        -logp[b, i - 1, t].item()
        for b in range(len(rows))
        for i, t in enumerate(batch["labels"][b].tolist())
        if t != -100
    ]
    assert training.causal_lm_loss(logits, batch["labels"]).item() == pytest.approx(
        sum(response_only) / len(response_only), rel=1e-5
    )


def test_trl_sft_trainer_takes_both_exports(sft_selection, chat_model, tmp_path):
    trl = pytest.importorskip("trl")

    def trainer(dataset, name):
        args = trl.SFTConfig(output_dir=str(tmp_path / name), max_steps=2, per_device_train_batch_size=2, report_to=[],
                             save_strategy="no", use_cpu=True)  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(chat_model)
        return trl.SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok)

    tok = AutoTokenizer.from_pretrained(chat_model)
    tokenized = datasets.load_dataset(
        "parquet", data_files=str(sft_selection / "mix-pairs/data/*.parquet"), split="train"
    )
    tokens = trainer(tokenized.select_columns(["input_ids", "attention_mask", "labels"]), "tokens")
    collated = tokens.data_collator([tokenized[0]])
    assert collated["labels"][0].tolist() == tokenized[0]["labels"]  # the export's labels decide what is trained
    tokens.train()
    raw = datasets.load_dataset("json", data_files=str(sft_selection / "mix-pairs/sft/*.jsonl"), split="train")
    texts = trainer(raw.select_columns(["prompt", "completion"]), "texts")
    processed = texts.train_dataset[0]  # TRL tokenizes prompt + completion and masks the prompt in the labels
    assert 0 < sum(label != -100 for label in processed["labels"]) < len(processed["input_ids"])
    texts.train()
    assert math.isfinite(texts.state.log_history[-1]["train_loss"])


def test_the_readme_trl_example_runs_on_a_cpu(sft_selection, chat_model, tmp_path, monkeypatch):
    pytest.importorskip("trl")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = re.search(r"```python\n(import datasets\nimport torch\nfrom trl import .*?)```", readme, re.S).group(1)
    (tmp_path / "mix1").symlink_to(sft_selection / "mix-chats")
    monkeypatch.chdir(tmp_path)
    code = block.replace('"HuggingFaceTB/SmolLM2-135M"', repr(chat_model))
    code = code.replace('SFTConfig("out", ', 'SFTConfig("out", max_steps=2, report_to=[], save_strategy="no", ')
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "out").is_dir()
