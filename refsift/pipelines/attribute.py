"""Attribution: which training sources taught a fine-tuned model what a target set shows
(UnTrac and UnTrac-Inv; see `refsift.kernels.unlearn`).

    targets, sources (any input `refsift score` reads) -> documents -> windows (the scoring
    rules: prefix, prompts, chat turns) -> losses before -> unlearn a copy -> losses after
    -> attribution/*.parquet, attribution_documents/*.parquet, catalog.duckdb, report.html

Unlearning is sequential work on one model, so this runs in one process, not as a Beam
pipeline: the sets are read with the same readers as `refsift score` and sampled (at most
`source_samples` documents per source, seeded, by reservoir sampling, so memory does not
grow with a source). Losses are measured with the scoring kernels. The model on disk is
never touched: every unlearning works on an in-memory copy.

Run it with `refsift attribute` (see `refsift attribute --help`), `refsift.attribute(...)`,
or `refsift novelty --attribute` (the novelty samples are the target).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from refsift import catalog, models
from refsift.config import EQUAL, AttributeConfig, window_context
from refsift.corpus.chunk import Chunk
from refsift.errors import RefsiftError
from refsift.jobs import progress, reading, rundir
from refsift.kernels import bootstrap
from refsift.kernels.encode import prefix_id
from refsift.kernels.nll import window_nll
from refsift.kernels.unlearn import BOTH, training_rows, unlearn
from refsift.reports import attribution as findings
from refsift.schemas import ATTRIBUTION_DOCUMENTS_SCHEMA, ATTRIBUTION_SCHEMA
from refsift.transforms.tokenize_windows import tokenize_chunk

log = logging.getLogger("refsift")
ALL = "all"


@dataclass
class Prepared:
    """A set of documents cut into windows as `refsift score` cuts them."""

    name: str
    chunk: Chunk

    @property
    def documents(self) -> list[dict]:
        return self.chunk.documents


def prepare(name: str, documents: list[dict], tokenizer, prefix: int | None, cfg: AttributeConfig) -> Prepared:
    chunk = Chunk(task=0, index=0, final=True, read=len(documents), documents=[dict(d) for d in documents])
    tokenize_chunk(chunk, tokenizer, prefix, cfg.max_length, window_context(cfg.context, cfg.windows))
    if not chunk.documents:
        raise RefsiftError(f"{name}: no document has a token to score")
    return Prepared(name, chunk)


def losses(model, prepared: Prepared, cfg: AttributeConfig, pad: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(nats per scored token over the set, nats per document, scored tokens per document)."""
    w = prepared.chunk.windows
    nll = window_nll(model, w, cfg.batch_size, cfg.max_length, pad)
    totals = w.document_sums(len(prepared.documents), nll)
    counts = w.document_sums(len(prepared.documents))
    return float(totals.sum() / counts.sum()), totals, counts


def attribute(
    model, tokenizer, targets: dict[str, list[dict]], sources: dict[str, list[dict]], cfg: AttributeConfig
) -> tuple[list[dict], list[dict]]:
    """Attribution rows and (UnTrac-Inv) document rows for each target set and source."""
    prefix, pad = prefix_id(tokenizer, cfg.prefix), models.pad_id(tokenizer)
    target_sets = {name: prepare(name, docs, tokenizer, prefix, cfg) for name, docs in targets.items()}
    source_sets = {name: prepare(name, docs, tokenizer, prefix, cfg) for name, docs in sorted(sources.items())}
    settings = cfg.unlearning
    measured, unlearned = (target_sets, source_sets) if cfg.method == "untrac" else (source_sets, target_sets)
    before = {name: losses(model, p, cfg, pad) for name, p in measured.items()}
    truncate = cfg.max_length if settings.procedure == "paper" else None
    rows_of = {name: training_rows(p.chunk.windows, truncate=truncate) for name, p in unlearned.items()}
    if cfg.unlearn_steps == EQUAL:
        settings = replace(settings, steps=min(settings.for_rows(len(rows)).steps for rows in rows_of.values()))
    results: dict[tuple[str, str], tuple] = {}
    steps_of: dict[str, int] = {}
    for name, p in unlearned.items():
        rows = rows_of[name]
        steps = steps_of[name] = settings.for_rows(len(rows)).steps
        what = "source" if cfg.method == "untrac" else "target"
        log.info(f"{cfg.method}: unlearning {what} {name} ({len(p.documents)} documents, {steps} steps)")
        step_log = progress.StepLog(f"{cfg.method}: {what} {name}", steps)
        learner = unlearn(model, rows, settings, pad_id=pad, log=step_log)
        for other, q in measured.items():
            results[name, other] = losses(learner, q, cfg, pad)
        del learner
    attribution, documents = [], []
    for target in target_sets:
        rows, resampled = [], []
        for k, (source, q) in enumerate(source_sets.items()):
            key = (source, target) if cfg.method == "untrac" else (target, source)
            measured_set = target if cfg.method == "untrac" else source
            (loss_before, doc_before, counts), (loss_after, doc_after, _) = before[measured_set], results[key]
            size = measured[measured_set]
            # UnTrac measures every source on the same target documents: resampled alike (paired)
            index = bootstrap.draws(len(counts), seed=[cfg.seed, 0 if cfg.method == "untrac" else k])
            resampled.append(bootstrap.ratio(doc_after - doc_before, counts, index))
            low, high = bootstrap.interval(resampled[-1])
            rows.append(
                {
                    "target": target,
                    "source": source,
                    "method": cfg.method,
                    "influence": loss_after - loss_before,
                    "influence_low": low,
                    "influence_high": high,
                    "loss_before": loss_before,
                    "loss_after": loss_after,
                    "n_documents": len(size.documents),
                    "n_tokens": int(counts.sum()),
                    "unlearn_steps": steps_of[source if cfg.method == "untrac" else target],
                }
            )
            if cfg.method == "untrac-inv":
                for doc, b, a, n in zip(q.documents, doc_before, doc_after, counts):
                    documents.append(
                        {
                            "target": target,
                            "source": source,
                            "doc_id": doc["doc_id"],
                            "text": doc["text"],
                            "loss_before": b / n,
                            "loss_after": a / n,
                            "rise": (a - b) / n,
                            "n_tokens": int(n),
                        }
                    )
        first = np.argmax(np.stack(resampled), axis=0)  # the source ranked first in each resample
        for k, row in enumerate(rows):
            row["p_first"] = float(np.mean(first == k))
        for rank, row in enumerate(sorted(rows, key=lambda r: (-r["influence"], r["source"])), start=1):
            attribution.append({**row, "rank": rank})
    return attribution, documents


def write_tables(out: str, attribution: list[dict], documents: list[dict], *, build_catalog: bool = True) -> None:
    """The two tables as Parquet under `out`, and (for an attribution directory) its catalog."""
    for table, rows, schema in (
        ("attribution", attribution, ATTRIBUTION_SCHEMA),
        ("attribution_documents", documents, ATTRIBUTION_DOCUMENTS_SCHEMA),
    ):
        Path(out, table).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), Path(out, table, "part-00000.parquet"))
    if build_catalog:
        catalog.build(out, {"attribution": ATTRIBUTION_SCHEMA, "attribution_documents": ATTRIBUTION_DOCUMENTS_SCHEMA})


def load(cfg: AttributeConfig):
    """The model, in float32 (unlearning at 5e-5 vanishes in bf16 rounding), and its tokenizer."""
    models.check_device(cfg.device)
    tokenizer = models.load_tokenizer(cfg.model, trust_remote_code=cfg.trust_remote_code)
    model = models.load_model(
        cfg.model, device=cfg.device, dtype="float32", trust_remote_code=cfg.trust_remote_code, tokenizer=tokenizer
    )
    return model, tokenizer


def run(cfg: AttributeConfig) -> dict:
    """Reads the target and the sources, attributes, writes DIR; returns attribution.json's content."""
    from refsift.pages import attribution as page

    started = time.time()
    if not rundir.is_local(cfg.out):
        raise RefsiftError("attributions are written to a local directory")
    target_docs, target_rejected = reading.read_documents(
        list(cfg.targets), replace(cfg, source_field=None), cfg.target_samples, "target", seed=cfg.seed
    )
    targets = {ALL: [d for docs in target_docs.values() for d in docs]}
    sources, source_rejected = reading.read_documents(
        list(cfg.sources), cfg, cfg.source_samples, "sources", seed=cfg.seed
    )
    model, tokenizer = load(cfg)
    protect = [*cfg.targets, *cfg.sources, models.resolve(cfg.model), *([cfg.dedup] if cfg.dedup else [])]
    with rundir.claim(cfg.out, kind="attribution", overwrite=cfg.overwrite, protect=protect) as claim:
        cfg = replace(cfg, out=claim.path)
        attribution, documents = [], []
        for method in cfg.methods:
            rows, docs = attribute(model, tokenizer, targets, sources, replace(cfg, method=method))
            attribution, documents = attribution + rows, documents + docs
        write_tables(cfg.out, attribution, documents)
        record = {
            **rundir.header(),
            "model": models.provenance(cfg.model),
            "settings": {**asdict(cfg), "unlearning": asdict(cfg.unlearning)},
            "rejected": {"target": dict(target_rejected), "sources": dict(source_rejected)},
            "attribution": attribution,
            **({"agreement": findings.agreement(attribution)} if cfg.method == BOTH else {}),
            "wall_time_s": round(time.time() - started, 2),
        }
        rundir.write_json(rundir.join(cfg.out, "attribution.json"), record)
        page.write(record, documents, cfg.out)
        claim.complete()
    return record
