"""Iterative CGE: after each generated example (or every `update_every`), a few AdamW steps
of ordinary next-token loss on what was generated, applied to an in-memory copy of the base
model, so what was already found stops being novel and later samples move on.

The update is the authors' (their Trainer's defaults): AdamW without weight decay, the
gradient norm clipped at 1.0, learning rate 5e-5 held constant, one step per sample.
Where refsift differs, and why:
- dropout stays off during the update (the copy stays in eval mode). The authors' Trainer
  updates in train mode, which draws dropout masks from torch's global random state, so
  the same seed gave different samples from run to run; for Llama-family models, whose
  dropout is 0, nothing else changes. Here the same seed gives the same samples however
  and wherever it is called.
- the loss covers the generated tokens only, not a prompt (the authors generate from BOS
  alone, where the two are the same).

The fine-tuned model is never touched and nothing is written to disk. Plain torch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace

from refsift.kernels.contrastive import DecodeSettings, Generated, generate
from refsift.kernels.training import IGNORE, causal_lm_loss, collate


def iterative_cge(
    finetuned,
    base,
    prompts: list[list[int]],
    seeds: list[int],
    settings: DecodeSettings,
    *,
    eos_id: int | None,
    pad_id: int = 0,
    update_every: int = 1,
    update_steps: int = 1,
    lr: float = 5e-5,
) -> Iterator[tuple[int, Generated]]:
    """Yields (iteration, sample) in generation order; `prompts`/`seeds` give one per sample."""
    import torch

    learner = copy.deepcopy(base)  # the caller's base model stays as it was
    learner.eval()  # and stays so: no dropout, no global random state
    optimizer = torch.optim.AdamW(learner.parameters(), lr=lr, weight_decay=0.0)
    for start in range(0, len(prompts), update_every):
        group = slice(start, start + update_every)
        found = generate(finetuned, learner, prompts[group], settings, seeds=seeds[group], eos_id=eos_id, pad_id=pad_id)
        for sample in found:
            yield start // update_every, sample
        rows = [s.prompt + s.tokens for s in found if s.tokens]
        if rows:
            update(learner, optimizer, rows, [len(s.prompt) for s in found if s.tokens], update_steps, pad_id)


MAX_GRAD_NORM = 1.0


def update(model, optimizer, rows: list[list[int]], prompt_lengths: list[int], steps: int, pad_id: int) -> None:
    """`steps` AdamW steps of next-token loss on the generated part of `rows` (the model in
    eval mode: deterministic)."""
    import torch

    examples = [{"input_ids": row, "labels": [IGNORE] * n + row[n:]} for row, n in zip(rows, prompt_lengths)]
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collate(examples, pad_id).items()}
    for _ in range(steps):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = causal_lm_loss(logits, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def plain(settings: DecodeSettings) -> DecodeSettings:
    """Settings for plain samples from one model, the reference CGE samples are read against:
    ancestral sampling, no contrast, no plausibility cut (what the model writes by itself)."""
    return replace(settings, gamma=0.0, alpha=0.0, mode="sample")
