"""Unlearning by gradient ascent, and what it says about influence (UnTrac: Isonuma & Titov,
"Unlearning Reveals the Influential Training Data of Language Models", ACL 2024).

- UnTrac: unlearn a training source D_k from a copy of the trained model; its influence on
  a target set is how much the target's loss rises: loss_target(after) - loss_target(before).
- UnTrac-Inv: unlearn the target set once; a source's influence is how much *its* loss
  rises. One unlearning run answers for any number of sources.

Unlearning is the authors' training step with the loss negated (their `Unlearner`), with
their defaults: Adafactor (no relative step, no parameter scaling: transformers' Trainer
settings), learning rate 5e-5 held constant, no gradient clipping; UnTrac one epoch over a
source in batches of 1, UnTrac-Inv 50 steps of 256 target examples. The trained model is
never touched. Two procedures (`UnlearnSettings.procedure`):

- "refsift" (default): the copy stays in eval mode (no dropout: one answer, whatever the
  hardware's random streams), every window of a document is unlearned (the same windows
  that scoring cuts), and a batch's loss is the mean over its labelled tokens, however it is
  cut into micro-batches.
- "paper": as the authors' code trains (github.com/misonuma/untrac, `Unlearner`): dropout on
  (its masks drawn from `seed`, so a run is still reproducible on one machine), each
  document truncated to its first window, and a step's loss the mean of its micro-batches'
  own token means (transformers' gradient accumulation; their per-device batch is 1 for
  UnTrac and 2 for UnTrac-Inv, 128 accumulated), so short documents weigh more.

Plain torch: no Beam here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

from refsift.kernels.training import IGNORE, causal_lm_loss, collate

OPTIMIZERS = ("adafactor", "adamw", "sgd")
PROCEDURES = ("refsift", "paper")
METHODS = ("untrac-inv", "untrac")
BOTH = "both"  # each method, and whether they agree
# The authors' settings (their untrac_synthetic.sh and untrac-inv_synthetic.sh); their
# per-device batch is the micro-batch of procedure "paper" (its loss is a mean of micro-batch means).
DEFAULTS = {
    "untrac": {"steps": None, "batch_size": 1, "per_device": 1},
    "untrac-inv": {"steps": 50, "batch_size": 256, "per_device": 2},
}
MICRO_BATCH = 8  # procedure "refsift": any micro-batch gives the same step


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
      seed: the order of the rows (and, procedure "paper", the dropout masks).
      procedure: "refsift" or "paper" (see the module docstring).
    """

    steps: int | None = None
    lr: float = 5e-5
    batch_size: int = 1
    micro_batch: int = 8
    optimizer: str = "adafactor"
    max_grad_norm: float = 0.0
    seed: int = 0
    procedure: str = "refsift"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.procedure not in PROCEDURES:
            raise ValueError(f"--procedure must be one of {', '.join(PROCEDURES)}")
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


def unlearn(model, rows: list[dict], settings: UnlearnSettings, *, pad_id: int = 0, log=None):
    """A copy of `model` after gradient ascent on `rows` ({input_ids, labels}, labels -100
    where a token is not trained on). `log(step, loss, lr, tokens)` after each optimizer
    step, with the loss being ascended (`refsift.jobs.progress.StepLog` prints it)."""
    import torch

    paper = settings.procedure == "paper"
    learner = copy.deepcopy(model).train(paper)
    optimizer = _optimizer(learner.parameters(), settings)
    device = next(learner.parameters()).device
    settings = settings.for_rows(len(rows))
    steps = settings.steps
    generator = torch.Generator().manual_seed(settings.seed)
    order: list[int] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)  # the dropout masks ("paper"); the caller's random state is left as it was
        for step in range(steps):
            while len(order) < settings.batch_size:  # epochs in a seeded order
                order += torch.randperm(len(rows), generator=generator).tolist()
            batch, order = [rows[i] for i in order[: settings.batch_size]], order[settings.batch_size :]
            parts = range(0, len(batch), settings.micro_batch)
            labelled = sum(sum(x != IGNORE for x in r["labels"][1:]) for r in batch) or 1
            step_loss = 0.0
            for start in parts:
                part = collate(batch[start : start + settings.micro_batch], pad_id)
                part = {k: v.to(device) for k, v in part.items()}
                count = (part["labels"][:, 1:] != IGNORE).sum()
                if not count:
                    continue
                logits = learner(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
                # ascent on this micro-batch's share of the step's loss: the mean over the step's
                # tokens ("refsift"), or over its micro-batches' means ("paper")
                share = 1 / len(parts) if paper else count / labelled
                loss = causal_lm_loss(logits, part["labels"]) * share
                (-loss).backward()
                step_loss += float(loss.detach())
            if settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(learner.parameters(), settings.max_grad_norm)
            step_lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if log is not None:
                log(step + 1, step_loss, step_lr, labelled)
    return learner.eval()


def training_rows(windows, *, truncate: int | None = None) -> list[dict]:
    """One row per window ({input_ids, labels}): the scored positions are the ones trained on,
    so prompts and repeated context are context here too, exactly as scoring treats them.
    `truncate=N`: one row per document instead, its first window cut to N tokens (the
    authors' truncation; a prompt too long for a window keeps its last tokens)."""
    rows = []
    for i in range(len(windows)):
        if truncate is not None and windows.window[i] != 0:
            continue
        span = slice(windows.offsets[i], min(windows.offsets[i + 1], windows.offsets[i] + (truncate or 2**62)))
        ids = windows.token_ids[span].tolist()
        rows.append({"input_ids": ids, "labels": [t if s else IGNORE for t, s in zip(ids, windows.scored[span])]})
    return rows
