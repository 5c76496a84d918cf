"""Novelty reports for a fine-tuned checkpoint: contrastive generation (CGE), iterative
CGE, and extract mode over candidate data.

    jobs (mode, seed, prompt) -> ContrastiveSampler -> samples/*.parquet -> catalog.duckdb
    extract: refsift score (model=base, finetuned=ft) on --data, or an existing --run
    -> report.json, report.md, report.html

Static samples fan out over Beam workers, each loading both models once; iterative CGE is
sequential by nature and runs as one element on one worker.

Run it with `refsift novelty` (see `refsift novelty --help`) or `refsift.pipelines.novelty.run`.
"""

from __future__ import annotations

import glob
import json
import shutil
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

import refsift
from refsift import catalog, models
from refsift.config import NoveltyConfig
from refsift.errors import RefsiftError
from refsift.jobs import progress, reading, rundir, runners
from refsift.jobs.runners import pipeline_options
from refsift.pages.html import covering_pieces
from refsift.schemas import ATTRIBUTION_DOCUMENTS_SCHEMA, ATTRIBUTION_SCHEMA, SAMPLES_SCHEMA
from refsift.transforms import WriteShards
from refsift.transforms.contrastive_sampler import ContrastiveSampler


def jobs(cfg: NoveltyConfig) -> list[dict]:
    """Sample jobs; prompts cycle over the samples; every job has its own seed. Iterative
    jobs travel together as one element: each depends on the base updates before it."""
    prompts = list(cfg.prompts) or [""]
    n_iterative = cfg.num_samples if cfg.iterative else 0
    n_static = cfg.static_samples if cfg.static_samples is not None else (0 if cfg.iterative else cfg.num_samples)
    n_baseline = cfg.num_samples if cfg.baseline_samples is None else cfg.baseline_samples
    n_base = n_baseline if cfg.base_samples is None else cfg.base_samples
    counts = (("cge", n_static), ("cge-iterative", n_iterative), ("baseline", n_baseline), ("base", n_base))
    out = [
        {
            "sample_id": f"{mode}-{i:05d}",
            "mode": mode,
            "seed": cfg.seed * 1_000_003 + i,
            "prompt": prompts[i % len(prompts)],
        }
        for mode, count in counts
        for i in range(count)
    ]
    iterative = [job for job in out if job["mode"] == "cge-iterative"]
    static = [job for job in out if job["mode"] != "cge-iterative"]
    return static + ([{"mode": "cge-iterative", "jobs": iterative}] if iterative else [])


def build(p: beam.Pipeline, cfg: NoveltyConfig) -> None:
    update = {"update_every": cfg.update_every, "update_steps": cfg.update_steps, "lr": cfg.lr}
    (
        p
        | "Jobs" >> beam.Create(jobs(cfg))
        | "ContrastiveSampler"
        >> ContrastiveSampler(
            base=cfg.base,
            finetuned=cfg.finetuned,
            settings=cfg.decode,
            batch_size=cfg.batch_size,
            update=update,
            device=cfg.device,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            run=cfg.out,
        )
        | "WriteSamples" >> WriteShards(directory=f"{cfg.out}/samples", schema=SAMPLES_SCHEMA)
    )


def check_run(run_dir: str, base: dict, finetuned: dict) -> None:
    """An extract-mode run must be complete and scored with these very models: its novelty
    column ranks documents by *its* models' losses, so a report naming others would lie."""
    rundir.require(run_dir, "run")
    roles = json.loads(Path(run_dir, "manifest.json").read_text())["roles"]
    if "finetuned" not in roles:
        raise RefsiftError(f"{run_dir} was scored without a --finetuned model: it has no novelty column")
    for option, role, given in (("--base", "model", base), ("--finetuned", "finetuned", finetuned)):
        scored = roles[role]
        key = "weights_sha256" if "weights_sha256" in given else "revision"
        if scored.get(key) != given.get(key) or (key == "revision" and scored.get("spec") != given.get("spec")):
            raise RefsiftError(
                f"{run_dir} was scored with {role} {scored.get('spec')} ({scored.get(key)}), not {option} "
                f"{given.get('spec')} ({given.get(key)}): score it with these models, or give that run's models"
            )


def extract(cfg: NoveltyConfig, beam_args: list[str]) -> list[dict]:
    """Candidate documents ranked by mean log p_ft - log p_base, as `extract` sample rows."""
    if cfg.data:
        from refsift.config import ScoreConfig
        from refsift.pipelines import score

        run_dir = f"{cfg.out}/extract_run"
        score.run(
            ScoreConfig(
                inputs=cfg.data,
                out=run_dir,
                model=cfg.base,
                finetuned=cfg.finetuned,
                device=cfg.device,
                dtype=cfg.dtype,
                trust_remote_code=cfg.trust_remote_code,
            ),
            beam_args,
        )
    elif cfg.run:
        run_dir = cfg.run
    else:
        return []
    con = catalog.connect(run_dir)
    try:
        top = con.execute(
            "SELECT doc_id, source, text, novelty FROM examples WHERE novelty IS NOT NULL "
            "ORDER BY novelty DESC, doc_id LIMIT ?",
            [cfg.top_documents],
        ).fetchall()
        by_doc = catalog.document_tokens(con, [doc_id for doc_id, *_ in top], "-nll_finetuned, -nll_model")
        rows = []
        for rank, (doc_id, source, text, novelty) in enumerate(top):
            tokens = by_doc[doc_id]
            pieces = covering_pieces(text, tokens)
            rows.append(
                {
                    "sample_id": f"extract-{rank:05d}-{doc_id}",
                    "mode": "extract",
                    "iteration": None,
                    "seed": None,
                    "prompt": f"{source}:{doc_id}",
                    "text": text,
                    "token_ids": [],
                    "token_text": [t for t, _, _ in pieces],
                    "logp_ft": [f for _, f, _ in pieces],
                    "logp_base": [b for _, _, b in pieces],
                    "score": [None if f is None else f - cfg.decode.gamma * b for _, f, b in pieces],
                    "n_tokens": len(tokens),
                    "finished": True,
                    "mean_contrast": novelty,
                }
            )
        return rows
    finally:
        con.close()


def attribution_config(cfg: NoveltyConfig):
    from refsift.pipelines.attribute import AttributeConfig

    return AttributeConfig(
        model=cfg.finetuned,
        targets=("novelty samples",),
        sources=cfg.attribute,
        out=cfg.out,
        method=cfg.attribute_method,
        unlearn_steps=cfg.unlearn_steps,
        unlearn_lr=cfg.unlearn_lr,
        source_samples=cfg.source_samples,
        device=cfg.device,
        seed=cfg.seed,
        trust_remote_code=cfg.trust_remote_code,
    )


def top_documents(rows: list[dict], documents: list[dict], per_target: int = 5) -> list[dict]:
    """For the report: per target, the documents of its most influential source that rose most."""
    top = {r["target"]: r["source"] for r in rows if r["rank"] == 1}
    chosen = []
    for target, source in top.items():
        mine = [d for d in documents if d["target"] == target and d["source"] == source]
        chosen += sorted(mine, key=lambda d: -(d["rise"] or 0))[:per_target]
    return chosen


def attribute_samples(cfg: NoveltyConfig, content: dict) -> tuple[list[dict], list[dict]]:
    """Which of `cfg.attribute`'s sources taught the fine-tuned model what its CGE samples
    show: all samples together, and each group of the report that holds two or more."""
    from refsift.pipelines import attribute
    from refsift.reports.novelty import CGE_MODES

    acfg = attribution_config(cfg)
    cge = [s for s in content["samples"] if s["mode"] in CGE_MODES and s["text"].strip()]
    blank = {"source": "samples", "prompt": None, "messages": None, "input": "samples"}
    docs = [{**blank, "doc_id": s["id"], "text": s["text"], "row": i} for i, s in enumerate(cge)]
    targets = {attribute.ALL: docs}
    for k, group in enumerate(content["summary"]["groups"]["groups"], start=1):
        ids = set(group["target"])
        members = [d for d in docs if d["doc_id"] in ids]
        if len(members) >= 2:
            targets[f"group {k}"] = members
    sources, _ = reading.read_documents(list(cfg.attribute), acfg, acfg.source_samples, "sources", seed=acfg.seed)
    if not docs or not sources:
        raise RefsiftError("--attribute needs CGE samples with text and sources with documents")
    model, tokenizer = attribute.load(acfg)
    rows, documents = attribute.attribute(model, tokenizer, targets, sources, acfg)
    attribute.write_tables(cfg.out, rows, documents, build_catalog=False)
    return rows, documents


def run(cfg: NoveltyConfig, beam_args: list[str] = ()) -> dict:
    """Generates, extracts and writes the report; returns report.json's content."""
    from refsift.pages import novelty as page
    from refsift.reports import novelty as report

    started = time.time()
    options = pipeline_options(list(beam_args))  # refuses unknown options before any work
    models.check_device(cfg.device)
    models.check_shared_tokenizer(
        {"base": cfg.base, "finetuned": cfg.finetuned}, trust_remote_code=cfg.trust_remote_code
    )
    base, finetuned = models.provenance(cfg.base), models.provenance(cfg.finetuned)
    if cfg.run:
        check_run(cfg.run, base, finetuned)
    if not rundir.is_local(cfg.out):
        raise RefsiftError("novelty reports are written to a local directory")
    protect = [*([cfg.run] if cfg.run else []), *cfg.data, *cfg.attribute]
    protect += [path for path in (models.local_path(cfg.base), models.local_path(cfg.finetuned)) if path]
    if cfg.attribute:
        attribution_config(cfg)  # refuses bad settings before any work
    with rundir.claim(cfg.out, kind="novelty", overwrite=cfg.overwrite, protect=protect) as claim:
        cfg = replace(cfg, out=claim.path)
        pipeline = beam.Pipeline(options=options)
        build(pipeline, cfg)
        planned = jobs(cfg)
        progress.write_total(cfg.out, sum(len(job.get("jobs", [job])) for job in planned))
        with progress.Line(cfg.out, ["sampled"], activity="sampling", unit="samples"):
            runners.run_job(pipeline, cfg.out, what="novelty job", resumable=False)
        shutil.rmtree(Path(cfg.out, progress.DIRECTORY), ignore_errors=True)
        extracted = extract(cfg, beam_args)
        if extracted:
            pq.write_table(pa.Table.from_pylist(extracted, schema=SAMPLES_SCHEMA), f"{cfg.out}/samples/extract.parquet")
        samples = []
        for path in sorted(glob.glob(f"{cfg.out}/samples/*.parquet")):
            samples += pq.read_table(path).to_pylist()
        settings = {k: v for k, v in asdict(cfg).items() if k not in ("base", "finetuned", "out", "decode")}
        settings.update(asdict(cfg.decode))
        content = report.build(
            base=base,
            finetuned=finetuned,
            settings=settings,
            samples=samples,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            refsift_version=refsift.__version__,
        )
        tables = {"samples": SAMPLES_SCHEMA}
        if cfg.attribute:
            rows, documents = attribute_samples(cfg, content)
            content["attribution"] = rows
            content["attribution_documents"] = top_documents(rows, documents)
            tables.update(attribution=ATTRIBUTION_SCHEMA, attribution_documents=ATTRIBUTION_DOCUMENTS_SCHEMA)
        catalog.build(cfg.out, tables)
        content["wall_time_s"] = round(time.time() - started, 2)
        page.write(content, cfg.out)
        claim.complete()
    return content
