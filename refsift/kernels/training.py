"""A lean causal-LM training loop that honours `labels` (-100 = not trained on).

The loss is the mean NLL over the tokens whose label is not -100, after the usual causal
shift (the label at position i is predicted from positions < i), as Hugging Face models
compute it: a Rho-1 token selection therefore trains with the selective LM loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

IGNORE = -100


def causal_lm_loss(logits, labels):
    """Mean NLL over positions with a label, predicting labels[:, 1:] from logits[:, :-1]."""
    import torch

    targets = labels[:, 1:]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE
    )


def pack(token_lists: Iterable[list[int]], length: int, eos_id: int | None = None) -> list[list[int]]:
    """Concatenates token lists (separated by `eos_id`) and cuts them into blocks of `length`."""
    stream: list[int] = []
    for tokens in token_lists:
        stream.extend(tokens)
        if eos_id is not None:
            stream.append(eos_id)
    return [stream[i : i + length] for i in range(0, len(stream) - length + 1, length)]


def collate(rows: list[dict], pad_id: int = 0) -> dict:
    """Right-padded tensors {input_ids, attention_mask, labels} from rows of lists.

    A row without `labels` trains on every token; padding is never trained on.
    """
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    out = {
        "input_ids": torch.full((len(rows), width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
        "labels": torch.full((len(rows), width), IGNORE, dtype=torch.long),
    }
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        out["input_ids"][i, :n] = torch.tensor(row["input_ids"])
        out["attention_mask"][i, :n] = torch.tensor(row.get("attention_mask") or [1] * n)
        out["labels"][i, :n] = torch.tensor(row.get("labels") or row["input_ids"])
    return out


def batches(rows: list[dict], batch_size: int, *, seed: int = 0, pad_id: int = 0) -> Iterator[dict]:
    """Endless batches over `rows`, reshuffled every epoch with a seeded generator."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(rows), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            yield collate([rows[i] for i in order[start : start + batch_size]], pad_id)


SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, steps: int, warmup: int, schedule: str) -> float:
    """The share of the peak learning rate at optimizer step `step` (0-based)."""
    if schedule == "constant":
        return min(1.0, (step + 1) / (warmup + 1))
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def train(
    model,
    batch_iter: Iterator[dict],
    *,
    steps: int,
    lr: float = 5e-4,
    grad_accum: int = 1,
    weight_decay: float = 0.0,
    warmup: int = 0,
    schedule: str = "constant",
    callback=None,
    log=None,
) -> list[float]:
    """Runs `steps` optimizer steps of AdamW; returns the loss of each step.

    The learning rate rises linearly over `warmup` steps, then stays at `lr` ("constant") or
    follows a cosine down to 0 at `steps` ("cosine", transformers' cosine schedule with
    warmup). `callback(step, loss)` runs after every optimizer step (checkpointing);
    `log(step, loss, lr, tokens)` too, with the step's learning rate and trained tokens
    (`refsift.jobs.progress.StepLog` prints it).
    """
    import torch

    device = next(model.parameters()).device
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup, schedule))
    losses = []
    for step in range(steps):
        total, tokens = 0.0, 0
        for _ in range(grad_accum):
            batch = {k: v.to(device) for k, v in next(batch_iter).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = causal_lm_loss(logits, batch["labels"]) / grad_accum
            loss.backward()
            total += loss.item()
            tokens += int((batch["labels"][:, 1:] != IGNORE).sum())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        step_lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)
        if callback is not None:
            callback(step + 1, total)
        if log is not None:
            log(step + 1, total, step_lr, tokens)
    model.eval()
    return losses
