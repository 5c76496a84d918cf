"""`ContrastiveSampler`: sample jobs -> `samples` rows, both models loaded once per worker.

A job is {sample_id, mode, seed, prompt}. Mode "cge" decodes contrastively (fine-tuned vs
base); "baseline" samples plainly from the fine-tuned model and "base" from the base model,
for comparison; "cge-iterative" jobs run in order inside one element (iterative CGE is
sequential: each sample depends on the base updates before it).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from refsift.jobs import progress
from refsift.kernels.contrastive import DecodeSettings, Generated
from refsift.kernels.token_bytes import token_bytes
from refsift.models import pad_id
from refsift.transforms.shared_models import shared_model, shared_tokenizer


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """Each token's share of the decoded text: "".join(result) == the sample's text. A
    character that a byte-level tokenizer split over several tokens is given whole to the
    last of them (the others get ""), so no piece shows half a character as U+FFFD."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    ends, end = [], 0
    for i in range(len(ids)):
        prefix = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
        if not prefix.endswith("\ufffd") and text.startswith(prefix):  # else: a character still incomplete
            end = max(end, len(prefix))
        ends.append(end)
    if ends:
        ends[-1] = len(text)
    return [text[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def sample_row(job: dict, sample: Generated, tokenizer, eos_id, iteration: int | None = None) -> dict:
    tokens = sample.tokens
    finished = bool(tokens) and tokens[-1] == eos_id
    contrast = [f - b for f, b in zip(sample.logp_ft, sample.logp_base)]
    return {
        "sample_id": job["sample_id"],
        "mode": job["mode"],
        "iteration": iteration,
        "seed": job["seed"],
        "prompt": job["prompt"],
        "text": tokenizer.decode(tokens, skip_special_tokens=True),
        "token_ids": tokens,
        "token_text": token_texts(tokenizer, tokens),
        "token_bytes": token_bytes(tokenizer, tokens),
        "logp_ft": sample.logp_ft,
        "logp_base": sample.logp_base,
        "score": sample.score,
        "n_tokens": len(tokens),
        "finished": finished,
        "mean_contrast": sum(contrast) / len(contrast) if contrast else None,
    }


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """BOS (else EOS, GPT-2's document separator) followed by the prompt's tokens."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [start] + (tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else [])


def pool_key(job: dict, pool_size: int) -> tuple[str, int]:
    """The pool a job is decoded in: its mode and the `pool_size` samples its number falls
    among ("cge-00012" with pools of 8: ("cge", 1)); the iterative jobs travel as one."""
    if job["mode"] == "cge-iterative":
        return job["mode"], 0
    return job["mode"], int(job["sample_id"].rsplit("-", 1)[1]) // pool_size


class _SampleFn(beam.DoFn):
    def __init__(self, base, finetuned, settings, batch_size, update, load_args, run):
        self._base, self._finetuned, self._settings, self._run = base, finetuned, settings, run
        self._batch_size, self._update, self._load_args = batch_size, update, load_args
        self._shared = Shared()
        self._samples = Metrics.counter("ContrastiveSampler", "samples")

    def setup(self):
        self._models = {
            role: shared_model(self._shared, spec, **self._load_args)
            for role, spec in (("base", self._base), ("finetuned", self._finetuned))
        }
        self._tokenizer = shared_tokenizer(self._shared, self._finetuned, self._load_args["trust_remote_code"])
        self._eos = self._tokenizer.eos_token_id
        self._pad = pad_id(self._tokenizer)
        self._progress = progress.Counter(self._run, "sample")

    def _count(self, sample) -> None:
        self._samples.inc()
        self._progress.add(records=1, tokens_sampled=len(sample.tokens))

    def process(self, keyed):
        (mode, _), pool = keyed
        if mode == "cge-iterative":
            for job in pool:
                yield from self._iterative(job["jobs"])
        else:
            yield from self._static(list(pool))

    def _static(self, pool):
        from refsift.kernels.contrastive import generate
        from refsift.kernels.iterative import plain

        pool = sorted(pool, key=lambda j: (j["mode"], j["sample_id"]))
        for i in range(0, len(pool), self._batch_size):
            batch = pool[i : i + self._batch_size]
            for mode in sorted({j["mode"] for j in batch}):
                jobs = [j for j in batch if j["mode"] == mode]
                first, second = self._models["finetuned"], self._models["base"]
                settings = self._settings if mode == "cge" else plain(self._settings)
                if mode == "base":  # sample from the base model: swap, and swap the scores back
                    first, second = second, first
                prompts = [prompt_ids(self._tokenizer, j["prompt"]) for j in jobs]
                found = generate(
                    first,
                    second,
                    prompts,
                    settings,
                    seeds=[j["seed"] for j in jobs],
                    eos_id=self._eos,
                    pad_id=self._pad,
                )
                for job, sample in zip(jobs, found):
                    if mode == "base":
                        sample.logp_ft, sample.logp_base = sample.logp_base, sample.logp_ft
                        sample.score = [f - self._settings.gamma * b for f, b in zip(sample.logp_ft, sample.logp_base)]
                    self._count(sample)
                    yield sample_row(job, sample, self._tokenizer, self._eos)
        self._progress.flush()

    def _iterative(self, jobs):
        from refsift.kernels.iterative import iterative_cge

        prompts = [prompt_ids(self._tokenizer, j["prompt"]) for j in jobs]
        found = iterative_cge(
            self._models["finetuned"],
            self._models["base"],
            prompts,
            [j["seed"] for j in jobs],
            self._settings,
            eos_id=self._eos,
            pad_id=self._pad,
            **self._update,
        )
        for job, (iteration, sample) in zip(jobs, found):
            self._count(sample)
            yield sample_row(job, sample, self._tokenizer, self._eos, iteration=iteration)
        self._progress.flush()


class ContrastiveSampler(beam.PTransform):
    """Generates the samples that jobs ask for.

    Args:
      base, finetuned: model specs (they must share a tokenizer).
      settings: DecodeSettings for the contrastive samples (plain samples use gamma=0, alpha=0).
      batch_size: samples decoded together.
      update: for iterative jobs, {update_every, update_steps, lr}.
      device, dtype, trust_remote_code: model loading.
      run: the output directory, whose progress files the launcher's progress line reads
        (None: no progress files).
    """

    def __init__(
        self,
        *,
        base: str,
        finetuned: str,
        settings: DecodeSettings,
        batch_size: int = 8,
        update: dict | None = None,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        run: str | None = None,
    ):
        super().__init__()
        load_args = dict(device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        self._fn = _SampleFn(base, finetuned, settings, batch_size, update or {}, load_args, run)
        self._pool_size = 4 * batch_size

    def expand(self, jobs):
        # Jobs travel in pools (a GroupByKey, not a bundle's leftovers flushed in finish_bundle,
        # whose output Beam's DaskRunner drops), so every runner decodes the same batches.
        return (
            jobs
            | "Pool" >> beam.Map(lambda job: (pool_key(job, self._pool_size), job))
            | "Pools" >> beam.GroupByKey()
            | "Generate" >> beam.ParDo(self._fn)
        )
