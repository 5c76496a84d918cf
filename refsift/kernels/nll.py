"""Per-token negative log-likelihood of a causal LM: token ids in, one loss per token out.

`token_nll` runs the model's body once and applies the output head in chunks of positions,
so the float32 logits it materialises are at most `chunk_bytes` big instead of
[batch, seq, vocab] (1.6 GB for a batch of 16 x 512 tokens with a 49k vocabulary).
Like nanochat's loss_eval, it is a plain function: the Beam transform only batches inputs
and writes rows.
"""

from __future__ import annotations

import math

DEFAULT_CHUNK_BYTES = 64 * 2**20


def token_nll(model, input_ids, attention_mask=None, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES):
    """NLL in nats of each token given the tokens before it, under `model`.

    Args:
      model: a Hugging Face causal LM (anything with `base_model` and
        `get_output_embeddings()`), already in eval mode on its device.
      input_ids: int tensor [batch, seq], right-padded.
      attention_mask: 0/1 tensor [batch, seq]; None means no padding.
      chunk_bytes: memory budget for one chunk of float32 logits.

    Returns:
      float32 tensor [batch, seq] on the CPU: entry [b, i] is -log p(x_i | x_<i); position 0
      and padded positions are NaN.
    """
    import torch

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    with torch.inference_mode():
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        head = model.get_output_embeddings()
        batch, seq = input_ids.shape
        nll = torch.full((batch, seq), math.nan, dtype=torch.float32)
        # Hidden state at position i predicts token i + 1.
        valid = (attention_mask[:, 1:] > 0) & (attention_mask[:, :-1] > 0)
        rows, cols = valid.nonzero(as_tuple=True)
        if rows.numel() == 0:
            return nll
        states = hidden[rows, cols]
        targets = input_ids[rows, cols + 1]
        step = max(1, chunk_bytes // (4 * head.weight.shape[0]))
        losses = torch.empty(rows.numel(), dtype=torch.float32)
        for i in range(0, rows.numel(), step):
            logits = head(states[i : i + step]).float()
            losses[i : i + step] = torch.nn.functional.cross_entropy(
                logits, targets[i : i + step], reduction="none"
            ).cpu()
        nll[rows.cpu(), cols.cpu() + 1] = losses
    return nll
