"""Contrastive decoding for novelty discovery (CGE: "What's New in My Data? Novelty
Exploration via Contrastive Generation", ICLR 2025).

The next-token score is log p_ft(v|x) - gamma * log p_base(v|x) over the plausible set
{v : p_ft(v|x) >= alpha * max_w p_ft(w|x)} (everything else -inf; the fine-tuned model's
top token always stays), so generation drifts toward what the fine-tuned model likes and the
base model does not. gamma = 0 and alpha = 0 give plain sampling from the fine-tuned model.

`generate` decodes a batch of prompts with both models' KV caches. Each prompt has its own
seed and draws its own Gumbel noise, so a sample does not depend on which other samples
shared its batch (Beam may batch differently on every run). `use_cache=False`
re-runs both models over the whole prefix at every step (the reference for tests and the
naive baseline of the throughput benchmark). Plain torch: no Beam here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MODES = ("sample", "greedy", "beam")


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode.

    Args:
      alpha: plausibility cut, relative to the fine-tuned model's top probability.
      gamma: weight of the base model's log-probability.
      mode: "sample", "greedy" or "beam" (beam search with sampling, as CGE's scripts).
      temperature, top_k, top_p: applied to the contrastive scores when sampling.
      num_beams: beams per sample in "beam" mode.
      max_new_tokens: stop after this many tokens if no EOS came.
    """

    alpha: float = 0.1
    gamma: float = 1.0
    mode: str = "sample"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_beams: int = 4
    max_new_tokens: int = 256

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"--decoding must be one of {', '.join(MODES)}")
        checks = (
            (0 <= self.alpha <= 1, f"--alpha must be in [0, 1], got {self.alpha:g}"),
            (self.gamma >= 0, f"--gamma must not be negative, got {self.gamma:g}"),
            (0 < self.temperature < math.inf, f"--temperature must be positive, got {self.temperature:g}"),
            (self.top_k >= 0, f"--top-k must be 0 (off) or positive, got {self.top_k}"),
            (0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p:g}"),
            (self.num_beams >= 1, f"--num-beams must be at least 1, got {self.num_beams}"),
            (self.max_new_tokens >= 1, f"--max-new-tokens must be at least 1, got {self.max_new_tokens}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class Generated:
    """One sample: the prompt ids and, per generated token, its id and scores."""

    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    logp_ft: list[float] = field(default_factory=list)
    logp_base: list[float] = field(default_factory=list)
    score: list[float] = field(default_factory=list)


def contrastive_scores(logp_ft, logp_base, *, alpha: float = 0.1, gamma: float = 1.0):
    """[batch, vocab] log-probs -> contrastive scores, -inf outside the plausible set."""
    import torch

    scores = logp_ft - gamma * logp_base
    if alpha > 0:
        top = logp_ft.max(dim=-1, keepdim=True).values
        scores = scores.masked_fill(logp_ft < top + math.log(alpha), -torch.inf)
    return scores


def sampling_logits(scores, settings: DecodeSettings):
    """Scores divided by temperature, with top-k and top-p (nucleus) filtering."""
    import torch

    logits = scores / settings.temperature
    if settings.top_k > 0:
        kth = torch.topk(logits, min(settings.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if settings.top_p < 1:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(ordered, dim=-1) >= settings.top_p  # keep the first token past top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), -torch.inf)
    return logits


class _Stepper:
    """Next-token log-probs of one model, with or without a KV cache."""

    def __init__(self, model, ids, mask, use_cache: bool):
        self.model, self.use_cache = model, use_cache
        self.ids, self.mask, self.past = ids, mask, None

    def logprobs(self):
        import torch

        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        if self.use_cache and self.past is not None:
            ids, positions = self.ids[:, -1:], positions[:, -1:]
        else:
            ids = self.ids
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.past if self.use_cache else None,
            use_cache=self.use_cache,
        )
        if self.use_cache:
            self.past = out.past_key_values
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    def append(self, tokens, keep_rows=None):
        import torch

        if keep_rows is not None:
            self.ids, self.mask = self.ids[keep_rows], self.mask[keep_rows]
            if self.past is not None:
                self.past.reorder_cache(keep_rows)
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(tokens)[:, None]], dim=1)


def _gumbel(generators: list, width: int, device):
    """Gumbel noise, one row per generator: argmax(logits + noise) samples softmax(logits),
    and top-k of (logits + noise) samples k items without replacement."""
    import torch

    u = torch.stack([torch.rand(width, generator=g) for g in generators]).to(device)
    return -torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-7)))


def _left_pad(prompts: list[list[int]], pad_id: int, repeat: int, device):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts) * repeat, width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, prompt in enumerate(prompts):
        for r in range(repeat):
            ids[i * repeat + r, width - len(prompt) :] = torch.tensor(prompt)
            mask[i * repeat + r, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def generate(
    finetuned,
    base,
    prompts: list[list[int]],
    settings: DecodeSettings,
    *,
    seeds: list[int],
    eos_id: int | None,
    pad_id: int = 0,
    use_cache: bool = True,
) -> list[Generated]:
    """Contrastive generation for each prompt (lists of token ids, e.g. [bos]), one seed each."""
    import torch

    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token (use the BOS token for unconditional samples)")
    if len(seeds) != len(prompts):
        raise ValueError("give one seed per prompt")
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    with torch.inference_mode():
        if settings.mode == "beam":
            return _beam_generate(finetuned, base, prompts, settings, eos_id, pad_id, generators, use_cache)
        device = next(finetuned.parameters()).device
        ids, mask = _left_pad(prompts, pad_id, 1, device)
        ft, bs = _Stepper(finetuned, ids, mask, use_cache), _Stepper(base, ids.clone(), mask.clone(), use_cache)
        results = [Generated(prompt=list(p)) for p in prompts]
        done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
        for _ in range(settings.max_new_tokens):
            logp_ft, logp_base = ft.logprobs(), bs.logprobs()
            scores = contrastive_scores(logp_ft, logp_base, alpha=settings.alpha, gamma=settings.gamma)
            if settings.mode == "greedy":
                tokens = scores.argmax(dim=-1)
            else:
                noise = _gumbel(generators, scores.shape[-1], device)
                tokens = (sampling_logits(scores, settings) + noise).argmax(dim=-1)
            tokens = torch.where(done, torch.full_like(tokens, pad_id), tokens)
            rows = torch.arange(len(prompts), device=device)
            picked = [t[rows, tokens].tolist() for t in (logp_ft, logp_base, scores)]
            for i, r in enumerate(results):
                if not done[i]:
                    r.tokens.append(int(tokens[i]))
                    r.logp_ft.append(picked[0][i])
                    r.logp_base.append(picked[1][i])
                    r.score.append(picked[2][i])
            done |= tokens == eos_id if eos_id is not None else done
            if done.all():
                break
            ft.append(tokens)
            bs.append(tokens)
        return results


def _beam_generate(finetuned, base, prompts, settings, eos_id, pad_id, generators, use_cache) -> list[Generated]:
    """Beam search with sampling: each step samples `num_beams` continuations per prompt
    from the softmax of (beam score + contrastive log-softmax / temperature) over all beams;
    the beam with the best length-normalised score is returned."""
    import torch

    k, n = settings.num_beams, len(prompts)
    device = next(finetuned.parameters()).device
    ids, mask = _left_pad(prompts, pad_id, k, device)
    ft, bs = _Stepper(finetuned, ids, mask, use_cache), _Stepper(base, ids.clone(), mask.clone(), use_cache)
    cum = torch.full((n, k), -torch.inf, device=device)
    cum[:, 0] = 0.0  # start from one beam, so the first samples are not duplicates
    history = [[Generated(prompt=list(p)) for _ in range(k)] for p in prompts]
    done = torch.zeros((n, k), dtype=torch.bool, device=device)
    for _ in range(settings.max_new_tokens):
        logp_ft, logp_base = ft.logprobs(), bs.logprobs()
        scores = contrastive_scores(logp_ft, logp_base, alpha=settings.alpha, gamma=settings.gamma)
        step = torch.log_softmax(sampling_logits(scores, settings), dim=-1)
        step = torch.where(torch.isnan(step), torch.full_like(step, -torch.inf), step)
        finished = done.view(-1)
        # A finished beam carries on with padding at no cost, so it competes with its final score.
        step[finished] = -torch.inf
        step[finished, pad_id] = 0.0
        vocab = step.shape[-1]
        candidates = (cum.view(-1, 1) + step).view(n, k * vocab)
        perturbed = candidates + _gumbel(generators, k * vocab, device)
        picks = perturbed.topk(k, dim=-1).indices  # k draws without replacement
        beam, tokens = picks // vocab, picks % vocab
        flat = (torch.arange(n, device=device)[:, None] * k + beam).view(-1)
        cum = candidates.gather(1, picks)
        was_done = done.view(-1)[flat]
        tokens_flat = tokens.view(-1)
        picked = [t[flat, tokens_flat].tolist() for t in (logp_ft, logp_base, scores)]
        new_history = []
        for i in range(n):
            row = []
            for j in range(k):
                f = int(flat[i * k + j])
                old = history[f // k][f % k]
                g = Generated(old.prompt, list(old.tokens), list(old.logp_ft), list(old.logp_base), list(old.score))
                if not was_done[i * k + j]:
                    g.tokens.append(int(tokens[i, j]))
                    for target, values in zip((g.logp_ft, g.logp_base, g.score), picked):
                        target.append(values[i * k + j])
                row.append(g)
            new_history.append(row)
        history = new_history
        done = was_done.view(n, k) | ((tokens == eos_id) if eos_id is not None else torch.zeros_like(done))
        if done.all():
            break
        ft.append(tokens_flat, keep_rows=flat)
        bs.append(tokens_flat, keep_rows=flat)
    best = (cum / torch.tensor([[max(1, len(g.tokens)) for g in row] for row in history], device=device)).argmax(-1)
    return [history[i][int(best[i])] for i in range(n)]
