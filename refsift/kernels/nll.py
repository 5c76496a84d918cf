"""Per-token negative log-likelihood of a causal LM: token ids in, one loss per token out.

`token_nll` runs the model's body once and applies the output head only at the positions
asked for (context a window repeats, prompt tokens and padding cost no head compute), in
chunks of positions, so the float32 logits it materialises are at most `chunk_bytes` big
instead of [batch, seq, vocab] (1.6 GB for a batch of 16 x 512 tokens with a 49k
vocabulary). The budget is small on the CPU (8 MB: peak memory stays flat, see
benchmarks/score_memory.py) and large on an accelerator (256 MB: fewer, larger matmuls).
The losses stay on the model's device: a caller moves them to the host once per batch,
not once per chunk. Like nanochat's loss_eval, it is a plain function; the Beam
transform only batches inputs and writes rows.
"""

from __future__ import annotations

import math

import numpy as np

CHUNK_BYTES = {"cpu": 8 * 2**20, "accelerator": 256 * 2**20}
CPU_BATCH_TOKENS = 4096  # padded tokens of one forward pass on a CPU at most (see window_nll)


def token_nll(model, input_ids, attention_mask=None, *, targets=None, chunk_bytes: int | None = None):
    """NLL in nats of each token given the tokens before it, under `model`.

    Args:
      model: a Hugging Face causal LM (anything with `base_model` and
        `get_output_embeddings()`), already in eval mode on its device.
      input_ids: int tensor [batch, seq], right-padded, on the model's device.
      attention_mask: 0/1 tensor [batch, seq]; None means no padding.
      targets: bool tensor [batch, seq] of the positions to score; None means every
        non-padded position after the first. Position 0 is never scored.
      chunk_bytes: memory budget for one chunk of float32 logits (default: by device).

    Returns:
      float32 tensor [batch, seq] on the model's device: entry [b, i] is
      -log p(x_i | x_<i) where targeted, NaN elsewhere.
    """
    import torch

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if targets is None:
        targets = attention_mask > 0
    targets = targets.clone()
    targets[:, 0] = False
    nll = torch.full(input_ids.shape, math.nan, dtype=torch.float32, device=input_ids.device)
    if input_ids.shape[1] < 2:
        return nll
    with torch.inference_mode():
        # The last position predicts nothing here: it is not fed (a window of n + 1 tokens needs n positions).
        hidden = model.base_model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1]).last_hidden_state
        head = model.get_output_embeddings()
        rows, cols = targets.nonzero(as_tuple=True)  # the hidden state at cols - 1 predicts token cols
        if rows.numel() == 0:
            return nll
        states = hidden[rows, cols - 1]
        labels = input_ids[rows, cols]
        if chunk_bytes is None:
            chunk_bytes = CHUNK_BYTES["cpu" if hidden.device.type == "cpu" else "accelerator"]
        step = max(1, chunk_bytes // (4 * head.weight.shape[0]))
        losses = torch.empty(rows.numel(), dtype=torch.float32, device=hidden.device)
        for i in range(0, rows.numel(), step):
            logits = head(states[i : i + step]).float()
            losses[i : i + step] = torch.nn.functional.cross_entropy(logits, labels[i : i + step], reduction="none")
        nll[rows, cols] = losses
    return nll


def document_nll(
    model, tokenizer, documents: list[dict], *, prefix: int | None, max_length: int, context: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(total nats, scored tokens) of each document under `model` reading its own
    `tokenizer`'s tokens: the documents are encoded and windowed by the scoring rules
    (`refsift.kernels.encode`, `refsift.kernels.windows`) and scored with `window_nll`."""
    from refsift.kernels.encode import encode
    from refsift.kernels.windows import cut
    from refsift.models import pad_id

    windows, _ = cut(encode(tokenizer, documents, prefix), max_length, context)
    nll = window_nll(model, windows, batch_size, max_length, pad_id(tokenizer))
    return windows.document_sums(len(documents), nll), windows.document_sums(len(documents))


def window_nll(model, windows, batch_size: int, max_length: int, pad_id: int, on_batch=None):
    """Float32 loss per fed token of `windows` (`refsift.kernels.windows.Windows`) under
    `model`, NaN where not scored, in length-sorted batches with one transfer to the host
    per batch. `on_batch(scored tokens)` after each.

    A batch holds at most `batch_size` x `max_length` padded tokens: short windows are
    packed up to that budget. On a CPU the budget is also at most `CPU_BATCH_TOKENS`,
    because there the cost per token grows with the tokens of a forward pass once its
    activations outgrow the caches: on 2 cores a 6-layer, 384-wide GPT-2 scored 4,137
    tokens a second in batches of 2,048 tokens, 4,034 in batches of 4,096 and 3,139 in
    batches of 8,192 (benchmarks/score_throughput.py has the shapes)."""
    import torch

    from refsift.kernels.windows import length_batches, padded

    device = next(model.parameters()).device
    budget = batch_size * max_length
    if device.type == "cpu":
        budget = min(budget, CPU_BATCH_TOKENS)
    nll = np.full(len(windows.token_ids), np.nan, dtype=np.float32)
    for index in length_batches(windows.lengths, budget):
        ids, cells, targets, flat = padded(windows, index, pad_id)
        out = token_nll(
            model,
            torch.from_numpy(ids).to(device),
            torch.from_numpy(cells).to(device, torch.long),
            targets=torch.from_numpy(targets).to(device),
        )
        nll[flat] = out.cpu().numpy()[cells]  # the batch's one transfer to the host
        if on_batch:
            on_batch(int(targets.sum()))
    return nll
