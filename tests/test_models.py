"""The launcher's weight check (`models.check_weights`): it reads only the weights files'
headers, and refuses what transformers' own loading would find wrong, on whichever
transformers is installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from refsift import models
from refsift.errors import RefsiftError


def gpt2(tokenizer, *, vocab: int | None = None, tie: bool = True, **change):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ids = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    settings = dict(n_positions=64, n_embd=16, n_layer=2, n_head=2, tie_word_embeddings=tie, **ids)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab or len(tokenizer), **{**settings, **change}))


def llama(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=False,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def saved(model, tokenizer, directory: Path, **kwargs) -> Path:
    model.save_pretrained(directory, **kwargs)
    tokenizer.save_pretrained(directory)
    return directory


def edit_config(directory: Path, **change) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **change}))


def transformers_verdict(directory: Path) -> dict[str, bool]:
    """Which kinds of trouble transformers itself reports when it loads the weights (on the CPU)."""
    from transformers import AutoModelForCausalLM

    try:
        _, info = AutoModelForCausalLM.from_pretrained(directory, output_loading_info=True, **models.plain_torch())
    except Exception as err:  # shapes that do not fit are an error in some releases
        assert "size" in str(err) or "shape" in str(err), err
        return {"missing_keys": False, "unexpected_keys": False, "mismatched_keys": True}
    return {kind: bool(info.get(kind)) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}


def refusal(directory: Path, tokenizer) -> str | None:
    try:
        models.check_weights(str(directory), tokenizer)
    except RefsiftError as err:
        return str(err)
    return None


@pytest.fixture(scope="module")
def sound(tokenizer, tmp_path_factory) -> Path:
    return saved(gpt2(tokenizer), tokenizer, tmp_path_factory.mktemp("models") / "sound")


def test_sound_checkpoints_pass_in_every_layout(tokenizer, tmp_path):
    from transformers import GPT2Model

    layouts = {
        "safetensors": saved(gpt2(tokenizer), tokenizer, tmp_path / "safetensors"),
        "sharded": saved(gpt2(tokenizer), tokenizer, tmp_path / "sharded", max_shard_size="20KB"),
        "untied": saved(gpt2(tokenizer, tie=False), tokenizer, tmp_path / "untied"),
        "llama": saved(llama(tokenizer), tokenizer, tmp_path / "llama"),
    }
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    # A state dict saved by torch (.bin), as older checkpoints are.
    binary = shutil.copytree(layouts["safetensors"], tmp_path / "binary")
    (binary / "model.safetensors").unlink()
    torch.save(gpt2(tokenizer).state_dict(), binary / "pytorch_model.bin")
    layouts["binary"] = binary
    # The base model's weights alone (no `transformer.` prefix, no head: tied to the embeddings).
    base = saved(GPT2Model(gpt2(tokenizer).config), tokenizer, tmp_path / "base")
    edit_config(base, architectures=["GPT2LMHeadModel"])
    layouts["base"] = base
    for name, directory in layouts.items():
        assert refusal(directory, tokenizer) is None, name
        assert not any(transformers_verdict(directory).values()), name  # transformers agrees


def test_damaged_or_missing_files_are_refused(sound, tokenizer, tmp_path):
    cut = shutil.copytree(sound, tmp_path / "cut")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert "a weights file is damaged (model.safetensors" in refusal(cut, tokenizer)

    binary = shutil.copytree(sound, tmp_path / "binary")
    (binary / "model.safetensors").unlink()
    torch.save(gpt2(tokenizer).state_dict(), binary / "pytorch_model.bin")
    data = (binary / "pytorch_model.bin").read_bytes()
    (binary / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    assert "a weights file is damaged (pytorch_model.bin" in refusal(binary, tokenizer)

    sharded = saved(gpt2(tokenizer), tokenizer, tmp_path / "sharded", max_shard_size="20KB")
    next(sharded.glob("model-*.safetensors")).unlink()
    assert "model.safetensors.index.json lists model-" in refusal(sharded, tokenizer)

    empty = shutil.copytree(sound, tmp_path / "empty")
    (empty / "model.safetensors").unlink()
    assert "no weights files" in refusal(empty, tokenizer)


@pytest.mark.parametrize(
    "change, kind, message",
    [
        ({"n_embd": 32}, "mismatched_keys", "do not fit its config.json"),
        ({"n_layer": 3}, "missing_keys", "are not in its weights files"),
        ({"n_layer": 1}, "unexpected_keys", "that its config.json does not ask for"),
        ({"tie_word_embeddings": False}, "missing_keys", "lm_head.weight"),
    ],
)
def test_weights_that_do_not_fit_the_config_are_refused_as_transformers_would_find(
    sound, tokenizer, tmp_path, change, kind, message
):
    model = shutil.copytree(sound, tmp_path / "model")
    edit_config(model, **change)
    verdict = transformers_verdict(model)
    assert verdict[kind], verdict  # transformers' own load finds the same trouble
    assert message in refusal(model, tokenizer)


def test_a_vocabulary_smaller_than_the_tokenizers_is_refused(tokenizer, tmp_path):
    small = saved(gpt2(tokenizer, vocab=100), tokenizer, tmp_path / "small")
    assert f"100 token embeddings but its tokenizer {len(tokenizer)} tokens" in refusal(small, tokenizer)


def test_the_check_loads_no_weight(sound, tokenizer, monkeypatch):
    from transformers import PreTrainedModel

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", refuse)
    assert refusal(sound, tokenizer) is None


def test_a_broken_environment_stops_the_demo_before_it_trains(tmp_path, monkeypatch):
    from refsift.demo import tiny
    from refsift.demo import tour as demo

    tiny.check_environment()  # the installed torch and transformers pass

    def broken(spec, tokenizer, **kwargs):
        raise RefsiftError(f"cannot load the model of {spec}: Unsupported device type 'meta'")

    def trained(*args, **kwargs):
        raise AssertionError("the demo trained before it checked its environment")

    monkeypatch.setattr(models, "check_weights", broken)
    monkeypatch.setattr(tiny, "pretrain", trained)
    with pytest.raises(RefsiftError, match="Unsupported device type"):
        demo.run(str(tmp_path / "demo"))
    assert not (tmp_path / "demo").exists()
