"""`TrainProxies`: (arm, seed) jobs -> a proxy model trained on the arm's rows and measured on
the held-out documents: one `runs` row, a `doc_losses` row per document, `curves` rows.

Each job is one element, so proxies train in parallel on as many workers as the runner has
(the DirectRunner's processes, Dask or Dataflow workers, a GPU each with --device cuda).
A job reads its rows from `OUT/_jobs/<arm>-<seed>.parquet` and the held-out documents from
`OUT/_eval.parquet`, both written by the launcher; a worker holds one proxy at a time.
Each finished job commits its rows to `OUT/_done/<arm>-<seed>.json` (written whole, then
renamed), so a killed search or ablation resumes without training a finished proxy again;
the launcher assembles the tables from those files (`results`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from refsift.kernels.training import IGNORE


@dataclass(frozen=True)
class ProxySettings:
    """How every proxy trains and is measured (the same for every arm).

    Args:
      proxy: "LxW" (a fresh GPT-2-style model) or a model directory to start from.
      tokenizer: the tokenizer's model spec.
      batch_size, lr, schedule, warmup_ratio: training (AdamW, linear warmup, then
        `refsift.kernels.training.SCHEDULES`).
      curve_points: evaluations along training.
      prefix_id, max_length, context, eval_batch_size: held-out scoring, as `refsift score`.
      device: "auto", "cpu", "cuda", ...
    """

    proxy: str
    tokenizer: str
    batch_size: int = 16
    lr: float = 2e-3
    schedule: str = "cosine"
    warmup_ratio: float = 0.1
    curve_points: int = 4
    prefix_id: int | None = None
    max_length: int = 512
    context: int | None = 64
    eval_batch_size: int = 8
    device: str = "auto"


def job_path(out: str, arm: str, seed: int) -> str:
    return f"{out}/_jobs/{arm}-{seed}.parquet"


def done_path(out: str, arm: str, seed: int) -> str:
    return f"{out}/_done/{arm}-{seed}.json"


def is_done(out: str, job: dict) -> bool:
    return os.path.exists(done_path(out, job["arm"], job["seed"]))


def results(out: str, jobs: list[dict]) -> dict[str, list[dict]]:
    """The committed rows of `jobs`, by table (`runs`, `doc_losses`, `curves`)."""
    tables: dict[str, list[dict]] = {"runs": [], "doc_losses": [], "curves": []}
    for job in jobs:
        with open(done_path(out, job["arm"], job["seed"]), encoding="utf-8") as handle:
            for table, row in json.load(handle):
                tables[table].append(row)
    return tables


def commit(out: str, job: dict, rows: list) -> None:
    path = done_path(out, job["arm"], job["seed"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(rows, handle, allow_nan=True)
    os.replace(tmp, path)


def eval_path(out: str) -> str:
    return f"{out}/_eval.parquet"


def held_out_losses(model, tokenizer, documents: list[dict], settings: ProxySettings):
    """(nats, scored tokens) of every held-out document, scored as `refsift score` scores."""
    from refsift.kernels.nll import document_nll

    return document_nll(model, tokenizer, documents, prefix=settings.prefix_id, max_length=settings.max_length,
                        context=settings.context, batch_size=settings.eval_batch_size)  # fmt: skip


def _curve_rows(job, step, fed, documents, totals, counts) -> list[tuple[str, dict]]:
    by_eval: dict[str, list[float]] = {}
    for doc, nats, n in zip(documents, totals, counts):
        acc = by_eval.setdefault(doc["eval"], [0.0, 0])
        acc[0] += float(nats)
        acc[1] += int(n)
    return [("curves", {**job, "step": step, "tokens_fed": fed, "eval": name, "nll": nats / max(n, 1)})
            for name, (nats, n) in sorted(by_eval.items())]  # fmt: skip


class _TrainFn(beam.DoFn):
    def __init__(self, out: str, settings: ProxySettings):
        self._out, self._settings = out, settings
        self._trained = Metrics.counter("TrainProxies", "proxies")

    def setup(self):
        import pyarrow.parquet as pq

        from refsift import models

        self._tokenizer = models.load_tokenizer(self._settings.tokenizer)
        self._pad = models.pad_id(self._tokenizer)
        self._documents = pq.read_table(eval_path(self._out)).to_pylist()

    def _model(self, seed: int, positions: int):
        import torch

        from refsift import models
        from refsift.kernels.proxy import heads_for, new_model, parse_proxy

        shape = parse_proxy(self._settings.proxy)
        device = models.pick_device(self._settings.device)
        if shape is None:
            torch.manual_seed(seed)
            return models.load_model(self._settings.proxy, device=self._settings.device, dtype="float32")
        layers, width = shape
        model = new_model(self._tokenizer, layers=layers, width=width, heads=heads_for(width), positions=positions,
                          seed=seed)  # fmt: skip
        return model.to(device)

    def process(self, job: dict):
        import math

        if is_done(self._out, job):  # committed by an earlier attempt
            yield job["arm"], job["seed"]
            return

        import pyarrow.parquet as pq

        from refsift.kernels import training

        started = time.time()
        settings, seed = self._settings, job["seed"]
        rows = pq.read_table(job_path(self._out, job["arm"], seed)).to_pylist()
        positions = max(settings.max_length, max(len(r["input_ids"]) for r in rows))
        model = self._model(seed, positions)
        steps = max(1, math.ceil(len(rows) / settings.batch_size))
        marks = sorted({max(1, round(steps * k / settings.curve_points)) for k in range(1, settings.curve_points + 1)})
        fed_by_step = [0]
        for start in range(0, len(rows), settings.batch_size):
            fed_by_step.append(
                fed_by_step[-1] + sum(len(r["input_ids"]) for r in rows[start : start + settings.batch_size])
            )
        out, self._final = [], None

        def batches():
            for start in range(0, len(rows), settings.batch_size):
                yield training.collate(rows[start : start + settings.batch_size], self._pad)

        def measure(step, _loss):
            if step in marks:
                model.eval()  # no dropout while measuring
                totals, counts = held_out_losses(model, self._tokenizer, self._documents, settings)
                out.extend(_curve_rows(job, step, fed_by_step[step], self._documents, totals, counts))
                if step == steps:
                    self._final = totals, counts
                model.train()

        warmup = math.ceil(settings.warmup_ratio * steps)
        losses = training.train(
            model, batches(), steps=steps, lr=settings.lr, warmup=warmup, schedule=settings.schedule, callback=measure
        )
        totals, counts = self._final
        for doc, nats, n in zip(self._documents, totals, counts):
            out.append(("doc_losses", {**job, "eval": doc["eval"], "source": doc["source"], "doc_id": doc["doc_id"],
                                       "nll": float(nats) / n if n else math.nan, "n_tokens": int(n)}))  # fmt: skip
        trained = sum(sum(1 for x in (r.get("labels") or r["input_ids"])[1:] if x != IGNORE) for r in rows)
        out.append(("runs", {**job, "steps": steps, "tokens_fed": fed_by_step[-1], "tokens_trained": trained,
                             "max_epochs": job["max_epochs"], "train_loss": losses[-1],
                             "wall_time_s": round(time.time() - started, 2)}))  # fmt: skip
        commit(self._out, job, out)
        self._trained.inc()
        yield job["arm"], job["seed"]


class TrainProxies(beam.PTransform):
    """Jobs {arm, seed, max_epochs} -> (arm, seed) of each committed job (its rows for `runs`,
    `doc_losses` and `curves` in OUT/_done/, read with `results`).

    Args:
      out: the ablation directory holding the jobs' rows and the held-out documents.
      settings: `ProxySettings`, the same for every job.
    """

    def __init__(self, *, out: str, settings: ProxySettings):
        super().__init__()
        self._fn = _TrainFn(out, settings)

    def expand(self, jobs):
        return jobs | "Train" >> beam.ParDo(self._fn)
