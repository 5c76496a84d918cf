"""Unlearning by gradient ascent, and what it says about influence (UnTrac: Isonuma & Titov,
"Unlearning Reveals the Influential Training Data of Language Models", ACL 2024).

- UnTrac: unlearn a training source D_k from a copy of the trained model; its influence on
  a target set is how much the target's loss rises: loss_target(after) - loss_target(before).
- UnTrac-Inv: unlearn the target set once; a source's influence is how much *its* loss
  rises. One unlearning run answers for any number of sources.

Unlearning is the authors' training step with the loss negated (their `Unlearner`), with
their defaults: Adafactor (no relative step, no parameter scaling: transformers' Trainer
settings), learning rate 5e-5 held constant, no gradient clipping; UnTrac one epoch over a
source in batches of 1, UnTrac-Inv 50 steps of 256 target examples. A batch's loss is the
mean over its labelled tokens, however it is cut into micro-batches. The copy stays in eval
mode (no dropout, so a seed gives one answer) and the trained model is never touched.
Plain torch: no Beam here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

from refsift.training import IGNORE, causal_lm_loss, collate

OPTIMIZERS = ("adafactor", "adamw", "sgd")


@dataclass(frozen=True)
class UnlearnSettings:
    """How to unlearn.

    Args:
      steps: optimizer steps; None means one epoch over the rows.
      lr: learning rate, held constant.
      batch_size: rows per optimizer step.
      micro_batch: rows per forward pass (gradients accumulate up to `batch_size`).
      optimizer: "adafactor" (the authors'), "adamw" or "sgd".
      max_grad_norm: clip the gradient norm to this; 0 means no clipping (the authors').
      seed: the order of the rows.
    """

    steps: int | None = None
    lr: float = 5e-5
    batch_size: int = 1
    micro_batch: int = 8
    optimizer: str = "adafactor"
    max_grad_norm: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if (self.steps is not None and self.steps < 1) or self.batch_size < 1 or self.micro_batch < 1:
            raise ValueError("--unlearn-steps, --unlearn-batch-size and --micro-batch must be positive")
        if not 0 < self.lr < math.inf or self.max_grad_norm < 0:
            raise ValueError("--unlearn-lr must be positive and --max-grad-norm not negative")

    def for_rows(self, n_rows: int) -> UnlearnSettings:
        """These settings for a set of `n_rows` rows: the batch capped at the set (a larger
        batch would repeat rows within one step: its gradient is the set's), and `steps`
        filled in (one epoch when None)."""
        batch_size = min(self.batch_size, max(n_rows, 1))
        return replace(self, batch_size=batch_size, steps=self.steps or max(1, math.ceil(n_rows / batch_size)))


def _optimizer(parameters, settings: UnlearnSettings):
    import torch

    if settings.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(parameters, lr=settings.lr, scale_parameter=False, relative_step=False, warmup_init=False)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.0)
    return torch.optim.SGD(parameters, lr=settings.lr)


def unlearn(model, rows: list[dict], settings: UnlearnSettings, *, pad_id: int = 0, on_step=None):
    """A copy of `model` after gradient ascent on `rows` ({input_ids, labels}, labels -100
    where a token is not trained on). `on_step(step, steps)` after each optimizer step."""
    import torch

    learner = copy.deepcopy(model).eval()
    optimizer = _optimizer(learner.parameters(), settings)
    device = next(learner.parameters()).device
    settings = settings.for_rows(len(rows))
    steps = settings.steps
    generator = torch.Generator().manual_seed(settings.seed)
    order: list[int] = []
    for step in range(steps):
        while len(order) < settings.batch_size:  # epochs in a seeded order
            order += torch.randperm(len(rows), generator=generator).tolist()
        batch, order = [rows[i] for i in order[: settings.batch_size]], order[settings.batch_size :]
        labelled = sum(sum(x != IGNORE for x in r["labels"][1:]) for r in batch) or 1
        for start in range(0, len(batch), settings.micro_batch):
            part = collate(batch[start : start + settings.micro_batch], pad_id)
            part = {k: v.to(device) for k, v in part.items()}
            count = (part["labels"][:, 1:] != IGNORE).sum()
            if not count:
                continue
            logits = learner(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
            # ascent: minus the batch's mean loss, this micro-batch's share of it
            (-causal_lm_loss(logits, part["labels"]) * count / labelled).backward()
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(learner.parameters(), settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if on_step:
            on_step(step + 1, steps)
    return learner


def training_rows(windows) -> list[dict]:
    """One row per window ({input_ids, labels}): the scored positions are the ones trained on,
    so prompts and repeated context are context here too, exactly as scoring treats them."""
    rows = []
    for i in range(len(windows)):
        ids = windows.token_ids[windows.offsets[i] : windows.offsets[i + 1]].tolist()
        scored = windows.scored[windows.offsets[i] : windows.offsets[i + 1]]
        rows.append({"input_ids": ids, "labels": [t if s else IGNORE for t, s in zip(ids, scored)]})
    return rows
