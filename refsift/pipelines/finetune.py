"""Fine-tuning on a selection export: causal LM training that honours `labels`.

A lean loop (`refsift.kernels.training`) rather than Hugging Face Trainer: the export already holds
input_ids / attention_mask / labels, the loss must be the mean over labelled tokens only
(the selective LM loss of Rho-1 when labels come from a token selection), and the loop is
short enough to read. Checkpoints are `save_pretrained` directories (safetensors, with the
tokenizer), so they work as `--finetuned`/`--checkpoint` for `refsift score`.
"""

from __future__ import annotations

import glob
import json
import math
import time
from pathlib import Path

from refsift import models
from refsift.config import FinetuneConfig
from refsift.corpus.tasks import is_saved_dataset
from refsift.errors import RefsiftError
from refsift.jobs import progress, rundir
from refsift.kernels import training
from refsift.kernels.training import IGNORE


def load_export(mix_dir: str) -> list[dict]:
    """Rows {input_ids, attention_mask, labels} of a selection export in any of its formats."""
    import datasets

    data = Path(mix_dir) / "data"
    if is_saved_dataset(data):
        dataset = datasets.load_from_disk(str(data))
    else:
        for kind, suffix in (("parquet", "parquet"), ("json", "jsonl")):
            files = sorted(glob.glob(str(data / f"*.{suffix}")))
            if files:
                dataset = datasets.load_dataset(kind, data_files=files, split="train")
                break
        else:
            raise RefsiftError(f"{mix_dir} holds no export (data/*.parquet, data/*.jsonl or a saved dataset)")
    columns = ["input_ids", "attention_mask", "labels"]
    return [dict(zip(columns, values)) for values in zip(*(dataset[c] for c in columns))]


def check_tokenizer(mix_dir: str, model: str) -> None:
    """The model must read the token ids the export was scored with."""
    try:
        selection = json.loads((Path(mix_dir) / "selection.json").read_text())
        manifest = json.loads(Path(selection["run"], "manifest.json").read_text())
    except (OSError, KeyError, ValueError):
        return  # the run is elsewhere (gs://) or moved: nothing to compare with
    expected = manifest["tokenizer"]["vocab_fingerprint"]
    if models.vocab_fingerprint(models.load_tokenizer(model)) != expected:
        raise RefsiftError(f"{model} does not share the tokenizer of the run {selection['run']}")


def run(cfg: FinetuneConfig) -> dict:
    """Trains `cfg.model` on the export(s) in `cfg.data`; saves to `cfg.out`; returns what
    training.json records. Every `log_every` steps (default a tenth of them; at most one line
    per 10 s) a line with the step, loss, learning rate, tokens per second and time left
    goes to refsift's logger and to OUT/train.log."""
    import torch

    model, out, steps, seed = cfg.model, cfg.out, cfg.steps, cfg.seed
    batch_size, grad_accum, save_every = cfg.batch_size, cfg.grad_accum, cfg.save_every
    sources = list(cfg.data)
    for mix_dir in sources:
        rundir.require(mix_dir, "selection")
    models.check_device(cfg.device)
    rows = [row for mix_dir in sources for row in load_export(mix_dir)]
    trainable = [r for r in rows if any(x != IGNORE for x in r["labels"][1:])]
    if not trainable:
        raise RefsiftError(f"{', '.join(sources)}: no row has a selected token to train on")
    for mix_dir in sources:
        check_tokenizer(mix_dir, model)
    if steps is None:
        steps = max(1, math.ceil(cfg.epochs * len(trainable) / (batch_size * grad_accum)))
    torch.manual_seed(seed)
    started = time.time()
    net = models.load_model(model, device=cfg.device, dtype="float32")
    tokenizer = models.load_tokenizer(model)
    protect = [*sources, models.resolve(model)]
    with rundir.claim(out, kind="checkpoint", overwrite=cfg.overwrite, protect=protect) as claim:

        def checkpoint(step, loss):
            if save_every and step % save_every == 0 and step < steps:
                models.save(net, tokenizer, Path(out) / f"checkpoint-{step}")

        batches = training.batches(trainable, batch_size, seed=seed, pad_id=models.pad_id(tokenizer))
        warmup = math.ceil(cfg.warmup_ratio * steps)
        log = progress.StepLog("finetune", steps, every=cfg.log_every, path=Path(out) / "train.log")
        losses = training.train(net, batches, steps=steps, lr=cfg.lr, grad_accum=grad_accum, warmup=warmup,
                                schedule=cfg.schedule, callback=checkpoint, log=log)  # fmt: skip
        models.save(net, tokenizer, out)
        record = {
            "data": sources,
            "model": model,
            "steps": steps,
            "lr": cfg.lr,
            "schedule": cfg.schedule,
            "warmup_steps": warmup,
            "batch_size": batch_size,
            "grad_accum": grad_accum,
            "seed": seed,
            "rows": len(rows),
            "rows_trained": len(trainable),
            "losses": losses,
            "wall_time_s": round(time.time() - started, 2),
        }
        Path(out, "training.json").write_text(json.dumps(record, indent=2))
        claim.complete()
    return record
