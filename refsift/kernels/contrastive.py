"""Contrastive decoding for novelty discovery (CGE: "What's New in My Data? Novelty
Exploration via Contrastive Generation", ICLR 2025).

The next-token score is log p_ft(v|x) - gamma * log p_base(v|x) over the plausible set
{v : p_ft(v|x) >= alpha * max_w p_ft(w|x)} (everything else -inf; the fine-tuned model's
top token always stays), so generation drifts toward what the fine-tuned model likes and the
base model does not. gamma = 0 and alpha = 0 give plain sampling from the fine-tuned model.

`generate` decodes a batch of prompts with both models' KV caches. Each prompt has its own
seed and its own Gumbel noise, so a sample does not depend on which other samples shared
its batch (Beam may batch differently on every run). The noise is drawn on the models'
device by a counter-based generator (splitmix64 of seed, step and vocabulary index): one
vectorised operation per step for the whole batch, nothing copied from the host, and the
same samples on a CPU and a GPU. `use_cache=False` re-runs both models over the whole
prefix at every step (the reference for tests and the naive baseline of the throughput
benchmark). Plain torch: no Beam here.

Decoding modes: "sample" and "greedy"; "beam", the authors' beam sampling (their
`beam_sample`): each step adds the raw contrastive scores to the running beam scores, draws
2 x num_beams candidates over all beams' continuations in proportion to softmax(score /
temperature), keeps the num_beams best and returns the best beam; "beam-normalized",
refsift's earlier variant, normalises each beam's step scores (log-softmax) and draws the
num_beams continuations directly. The paper's scripts decode with 4 beams and never stop at
EOS (`stop_at_eos=False`, 255 new tokens after BOS).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

MODES = ("sample", "greedy", "beam", "beam-normalized")


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode.

    Args:
      alpha: plausibility cut, relative to the fine-tuned model's top probability.
      gamma: weight of the base model's log-probability.
      mode: one of MODES (see the module docstring).
      temperature, top_k, top_p: applied to the contrastive scores when sampling.
      num_beams: beams per sample in the beam modes.
      max_new_tokens: stop after this many tokens (sooner at EOS if stop_at_eos).
      stop_at_eos: end a sample at EOS; the paper's scripts do not.
    """

    alpha: float = 0.1
    gamma: float = 1.0
    mode: str = "beam"  # the paper's; it found the novel domain at least as often (benchmarks/novelty_detection.py)
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_beams: int = 4
    max_new_tokens: int = 256
    stop_at_eos: bool = True

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
        # transformers 5.2x renamed the key-value cache argument (and output) from past_key_values to cache
        self.cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
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
            use_cache=self.use_cache,
            **{self.cache_name: self.past if self.use_cache else None},
        )
        if self.use_cache:
            self.past = out[self.cache_name]
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    def append(self, tokens, keep_rows=None):
        import torch

        if keep_rows is not None:
            self.ids, self.mask = self.ids[keep_rows], self.mask[keep_rows]
            if self.past is not None:
                self.past.reorder_cache(keep_rows)
        self.ids = torch.cat([self.ids, tokens[:, None]], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(tokens)[:, None]], dim=1)


_GOLDEN, _MIX1, _MIX2 = (c - 2**64 for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shift(x, bits: int):
    """Logical right shift of int64 values (torch's is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def gumbel(seeds, step: int, width: int):
    """Gumbel noise [len(seeds), width]: row i depends only on seeds[i], the step and the
    column, never on the batch. argmax(logits + noise) samples softmax(logits), and the
    top k of (logits + noise) samples k items without replacement."""
    import torch

    index = torch.arange(width, device=seeds.device, dtype=torch.int64) + step * width
    x = seeds[:, None] * _GOLDEN + index[None, :]
    x = (x ^ _shift(x, 30)) * _MIX1
    x = (x ^ _shift(x, 27)) * _MIX2
    x = x ^ _shift(x, 31)
    u = (_shift(x, 11).double() + 0.5) * 2.0**-53  # uniform in (0, 1)
    return (-torch.log(-torch.log(u))).float()


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
    device = next(finetuned.parameters()).device
    seeds_t = torch.tensor(seeds, dtype=torch.int64, device=device)
    eos_id = eos_id if settings.stop_at_eos else None
    with torch.inference_mode():
        if settings.mode.startswith("beam"):
            return _beam_generate(finetuned, base, prompts, settings, eos_id, pad_id, seeds_t, use_cache)
        ids, mask = _left_pad(prompts, pad_id, 1, device)
        ft, bs = _Stepper(finetuned, ids, mask, use_cache), _Stepper(base, ids.clone(), mask.clone(), use_cache)
        results = [Generated(prompt=list(p)) for p in prompts]
        done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
        for step in range(settings.max_new_tokens):
            logp_ft, logp_base = ft.logprobs(), bs.logprobs()
            scores = contrastive_scores(logp_ft, logp_base, alpha=settings.alpha, gamma=settings.gamma)
            if settings.mode == "greedy":
                tokens = scores.argmax(dim=-1)
            else:
                noise = gumbel(seeds_t, step, scores.shape[-1])
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


def _beam_generate(finetuned, base, prompts, settings, eos_id, pad_id, seeds, use_cache) -> list[Generated]:
    """Beam search with sampling, in the published form ("beam") or normalised per beam
    ("beam-normalized"); see the module docstring. Returns each prompt's best beam (the
    highest score per token). A beam that reached EOS carries on with padding at no cost,
    so it competes with its final score."""
    import torch

    k, n = settings.num_beams, len(prompts)
    published = settings.mode == "beam"
    device = next(finetuned.parameters()).device
    ids, mask = _left_pad(prompts, pad_id, k, device)
    ft, bs = _Stepper(finetuned, ids, mask, use_cache), _Stepper(base, ids.clone(), mask.clone(), use_cache)
    cum = torch.zeros((n, k), device=device)
    if not published:
        cum[:, 1:] = -torch.inf  # start from one beam, so the first draws are not duplicates
    history = [[Generated(prompt=list(p)) for _ in range(k)] for p in prompts]
    done = torch.zeros((n, k), dtype=torch.bool, device=device)
    for step_index in range(settings.max_new_tokens):
        logp_ft, logp_base = ft.logprobs(), bs.logprobs()
        scores = contrastive_scores(logp_ft, logp_base, alpha=settings.alpha, gamma=settings.gamma)
        if published:  # raw scores added to the beam scores, then temperature, top-k, top-p (as transformers)
            step = scores
        else:
            step = torch.log_softmax(sampling_logits(scores, settings), dim=-1)
            step = torch.where(torch.isnan(step), torch.full_like(step, -torch.inf), step)
        finished = done.view(-1)
        step = step.clone()
        step[finished] = -torch.inf
        step[finished, pad_id] = 0.0
        vocab = step.shape[-1]
        totals = cum.view(-1, 1) + step
        if published:
            totals = sampling_logits(totals, settings)
        candidates = totals.view(n, k * vocab)
        perturbed = candidates + gumbel(seeds, step_index, k * vocab)
        if published:  # 2k draws without replacement, keep the k best
            drawn = perturbed.topk(2 * k, dim=-1).indices
            picks = drawn.gather(1, candidates.gather(1, drawn).topk(k, dim=-1).indices)
        else:  # k draws without replacement
            picks = perturbed.topk(k, dim=-1).indices
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
