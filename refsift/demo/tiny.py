"""Tiny GPT-2-style models and byte-level BPE tokenizers, trained in seconds on the CPU.

Tests, benchmarks and the demo build their models with these, from the bundled corpora,
so nothing is downloaded: `train_tokenizer` then `new_model` then `pretrain`, then
`save` to a directory that any `--model`/`--reference`/... accepts.
"""

from __future__ import annotations

from pathlib import Path

from refsift import models
from refsift.kernels import training
from refsift.kernels.proxy import new_model  # noqa: F401 (tests and benchmarks build models from here)

SPECIAL = "<|endoftext|>"


def train_tokenizer(texts: list[str], vocab_size: int = 512):
    """A byte-level BPE fast tokenizer with `<|endoftext|>` as bos, eos and pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL)


def pretrain(
    model,
    tokenizer,
    texts: list[str],
    *,
    steps: int = 200,
    seq_len: int = 64,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    log=None,
) -> list[float]:
    """Trains on `texts` packed into blocks of `seq_len`; returns the per-step losses.
    `log` as `refsift.kernels.training.train` takes it."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = [{"input_ids": block} for block in training.pack(ids, seq_len, tokenizer.eos_token_id)]
    return training.train(model, training.batches(rows, batch_size, seed=seed), steps=steps, lr=lr, warmup=10, log=log)


def save(model, tokenizer, directory: str | Path) -> Path:
    """Saves as safetensors with the tokenizer, loadable by every refsift command."""
    return models.save(model, tokenizer, directory)


def check_environment() -> None:
    """Saves a tiny model and loads it back as a job's launcher and workers do (the weight
    check, then the load): a torch or transformers that refsift cannot use fails here, in
    seconds, before a long job trains anything."""
    import tempfile

    tokenizer = train_tokenizer(["refsift checks the environment before it trains"], vocab_size=300)
    with tempfile.TemporaryDirectory(prefix="refsift-check-") as directory:
        save(new_model(tokenizer, layers=1, width=16, heads=1, positions=32), tokenizer, directory)
        models.check_weights(directory, tokenizer)
        models.load_model(directory, device="cpu", tokenizer=tokenizer)
