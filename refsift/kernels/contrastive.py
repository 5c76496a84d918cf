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
`beam_sample` with transformers' `BeamSearchScorer`, transformers 4.34): each step adds the
raw contrastive scores to the running beam scores, draws 2 x num_beams candidates over all
beams' continuations in proportion to softmax(score / temperature) and takes them best
first: a candidate ending in EOS among the first num_beams is set aside as a finished
hypothesis (its score over its length, prompt included, before the EOS), the others refill
the beams until num_beams run on; a prompt is done once num_beams hypotheses are finished
and none still running could beat them, and its sample is the best of the finished and
running hypotheses by that length-normalised score. "beam-normalized", refsift's earlier
variant, normalises each beam's step scores (log-softmax), draws the num_beams
continuations directly, keeps a finished beam in its slot and returns the best beam per
token.

Stopping: the authors' static CGE generates with the fine-tuned model whose EOS their
`init_distill` clears, so it never stops before its length (`stop_at_eos=False`); their
iterative CGE generates with a model that keeps its EOS, and stops as above. Their length
is 256 tokens with the BOS prompt: 255 new tokens.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

MODES = ("sample", "greedy", "beam", "beam-normalized")


MAX_BEAMS = 64  # each beam is a batch row of both models
MAX_NEW_TOKENS = 100_000


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
      stop_at_eos: end a sample at EOS (as the authors' iterative CGE; their static CGE
        does not).
      length_penalty: the exponent of the length a finished beam hypothesis is divided by
        (transformers' default, 1.0).
    """

    # The metadata makes `refsift novelty`'s options (`refsift.cli.common.add_options`).
    alpha: float = field(default=0.1, metadata={"help": "plausibility cut relative to p_ft's top token"})
    gamma: float = field(default=1.0, metadata={"help": "weight of log p_base"})
    mode: str = field(
        default="beam",  # the paper's; it found the novel domain at least as often (benchmarks/novelty_detection.py)
        metadata={
            "flag": "--decoding",
            "choices": MODES,
            "help": "beam (default): the authors' beam sampling (--num-beams), which found novelty at least as often "
            "as sample in benchmarks/novelty_detection.py at 4x the compute; sample; greedy; beam-normalized: beams "
            "drawn from each beam's normalised scores",
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "of the contrastive and the plain samples"})
    top_k: int = field(default=0, metadata={"help": "keep the k best next tokens; 0 keeps all"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus: keep the best tokens up to this mass"})
    num_beams: int = field(default=4, metadata={"help": "with --decoding beam (as the paper)"})
    max_new_tokens: int = field(default=255, metadata={"help": "tokens per sample at most (the authors')"})
    stop_at_eos: bool = field(
        default=True,
        metadata={
            "flag": "--no-stop-at-eos",
            "help": "keep generating after EOS, to --max-new-tokens, as the authors' static CGE (their iterative CGE "
            "stops, as refsift does by default: in beam mode an EOS beam is set aside and the sample is the best of "
            "the finished and running beams by score per token, as transformers' BeamSearchScorer)",
        },
    )
    length_penalty: float = 1.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"--decoding must be one of {', '.join(MODES)}")
        checks = (
            (0 <= self.alpha <= 1, f"--alpha must be in [0, 1], got {self.alpha:g}"),
            (0 <= self.gamma < math.inf, f"--gamma must be a finite number, not negative, got {self.gamma:g}"),
            (0 < self.temperature < math.inf, f"--temperature must be positive, got {self.temperature:g}"),
            (0 <= self.top_k <= 2**31 - 1, f"--top-k must be 0 (off) or positive, got {self.top_k}"),
            (0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p:g}"),
            (self.num_beams >= 1, f"--num-beams must be at least 1, got {self.num_beams}"),
            (self.num_beams <= MAX_BEAMS, f"--num-beams must be at most {MAX_BEAMS}, got {self.num_beams}"),
            (
                1 <= self.max_new_tokens <= MAX_NEW_TOKENS,
                f"--max-new-tokens must be between 1 and {MAX_NEW_TOKENS:,}, got {self.max_new_tokens}",
            ),
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


def _extended(old: Generated, token: int | None, values) -> Generated:
    g = Generated(old.prompt, list(old.tokens), list(old.logp_ft), list(old.logp_base), list(old.score))
    if token is not None:
        g.tokens.append(token)
        for target, value in zip((g.logp_ft, g.logp_base, g.score), values):
            target.append(value)
    return g


class _Hypotheses:
    """transformers' `BeamHypotheses` for one prompt: the num_beams best finished beams by
    score / length ** length_penalty, and whether a running beam could still beat them."""

    def __init__(self, num_beams: int, length_penalty: float):
        self.k, self.penalty, self.kept = num_beams, length_penalty, []

    def add(self, generated: Generated, total: float, length: int) -> None:
        self.kept.append((total / length**self.penalty, generated))
        self.kept.sort(key=lambda kept: -kept[0])
        del self.kept[self.k :]

    def is_done(self, best_total: float, length: int) -> bool:
        return len(self.kept) >= self.k and self.kept[-1][0] >= best_total / length**self.penalty


def _beam_generate(finetuned, base, prompts, settings, eos_id, pad_id, seeds, use_cache) -> list[Generated]:
    """Beam search with sampling, in the published form ("beam") or normalised per beam
    ("beam-normalized"); see the module docstring. A beam that is done (a finished prompt's,
    or in "beam-normalized" one that reached EOS) carries on with padding at no cost."""
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
    finished = [_Hypotheses(k, settings.length_penalty) for _ in prompts]  # published, stopping at EOS
    closed = [False] * n  # a prompt whose finished hypotheses no running beam can beat
    for step_index in range(settings.max_new_tokens):
        logp_ft, logp_base = ft.logprobs(), bs.logprobs()
        scores = contrastive_scores(logp_ft, logp_base, alpha=settings.alpha, gamma=settings.gamma)
        if published:  # raw scores added to the beam scores, then temperature, top-k, top-p (as transformers)
            step = scores
        else:
            step = torch.log_softmax(sampling_logits(scores, settings), dim=-1)
            step = torch.where(torch.isnan(step), torch.full_like(step, -torch.inf), step)
        step = step.clone()
        step[done.view(-1)] = -torch.inf
        step[done.view(-1), pad_id] = 0.0
        vocab = step.shape[-1]
        totals = cum.view(-1, 1) + step
        if published:
            totals = sampling_logits(totals, settings)
        candidates = totals.view(n, k * vocab)
        perturbed = candidates + gumbel(seeds, step_index, k * vocab)
        values = [t.view(n, k * vocab) for t in (logp_ft, logp_base, scores)]
        if published:  # 2k draws without replacement, best first; EOS ones set aside, the first k others run on
            drawn = perturbed.topk(2 * k, dim=-1).indices
            drawn = drawn.gather(1, candidates.gather(1, drawn).argsort(dim=-1, descending=True))
            picks = drawn[:, :k].clone()
            if eos_id is not None:
                for i, row in enumerate(drawn.tolist()):
                    if closed[i]:
                        continue
                    running = []
                    for rank, c in enumerate(row):
                        beam, token = divmod(c, vocab)
                        if token != eos_id:
                            running.append(c)
                        elif rank < k:
                            old = history[i][beam]
                            sample = _extended(old, token, [float(v[i, c]) for v in values])
                            finished[i].add(sample, float(candidates[i, c]), len(old.prompt) + len(old.tokens))
                        if len(running) == k:
                            break
                    picks[i] = torch.tensor(running, device=device)
                    cur_len = len(prompts[i]) + step_index
                    closed[i] = finished[i].is_done(float(candidates[i, row[0]]), cur_len)
        else:  # k draws without replacement
            picks = perturbed.topk(k, dim=-1).indices
        beam, tokens = picks // vocab, picks % vocab
        flat = (torch.arange(n, device=device)[:, None] * k + beam).view(-1)
        cum = candidates.gather(1, picks)
        was_done = done.view(-1)[flat].view(n, k) | torch.tensor(closed, device=device)[:, None]
        picked = [v.gather(1, picks).tolist() for v in values]
        history = [
            [
                _extended(
                    history[i][int(beam[i, j])],
                    None if was_done[i, j] else int(tokens[i, j]),
                    [p[i][j] for p in picked],
                )  # fmt: skip
                for j in range(k)
            ]
            for i in range(n)
        ]
        stopped = (tokens == eos_id) if eos_id is not None and not published else torch.zeros_like(done)
        done = was_done | stopped
        if done.all():
            break
        ft.append(tokens.view(-1), keep_rows=flat)
        bs.append(tokens.view(-1), keep_rows=flat)
    if published and eos_id is not None:  # the best of the finished and the running hypotheses
        for i in range(n):
            if not closed[i]:
                for j, g in enumerate(history[i]):
                    finished[i].add(g, float(cum[i, j]), len(g.prompt) + len(g.tokens))
        return [finished[i].kept[0][1] for i in range(n)]
    best = (cum / torch.tensor([[max(1, len(g.tokens)) for g in row] for row in history], device=device)).argmax(-1)
    return [history[i][int(best[i])] for i in range(n)]
