"""The classification pipeline: `refsift classify`, a fastText classifier over a whole
corpus, on the scoring engine.

    tasks ──> IndexCorpus (ids, row counts) ─────────── side inputs ──┐
    tasks not yet done ──> ReadCorpus ──> ClassifyDocuments ──> CommitChunks

The same tasks, chunks, markers, `--resume`, locks, rejected rows and catalog as `refsift
score` (`refsift.jobs`); where scoring runs a language model over every token, this runs
a linear model over every document's words, with no torch anywhere on the workers or the
launcher. The run's `examples` has `classifier_score` per document (schema
`refsift.schemas.classified`), so `refsift select RUN --by classifier_score --budget 10%`
and SQL work as on a scoring run. Memory is bounded as in scoring: a worker holds one
chunk of documents and the classifier.

The classifier is a directory written by `refsift distill` (its card names the model and
the label) or any fastText `.bin` (PreSelect's, DCLM's) with `--label`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import apache_beam as beam

from refsift.config import ClassifyConfig
from refsift.corpus.tasks import plan_tasks
from refsift.errors import RefsiftError
from refsift.jobs import executor, ledger, reading, rundir, runners
from refsift.kernels import classifier as kernel
from refsift.pipelines.distill import CARD, MODEL_FILE
from refsift.schemas import REJECTED_SCHEMA
from refsift.schemas.classified import CLASSIFIED_SCHEMA
from refsift.transforms.classify_documents import ClassifyDocuments, local_copy
from refsift.transforms.commit_chunks import CommitChunks

RUNTIME_SETTINGS = ("out", "inputs", "overwrite", "resume")
SCHEMAS = {"examples": CLASSIFIED_SCHEMA, "rejected": REJECTED_SCHEMA}


def resolve_classifier(spec: str, label: str | None) -> tuple[str, str, dict]:
    """(model file, label, card) of a `refsift distill` directory or a fastText file; the
    model is loaded once here, so a wrong file is refused in one line before any work."""
    path = Path(rundir.local_path(spec)) if rundir.is_local(spec) else None
    card = {}
    if path is not None and path.is_dir():
        rundir.require(str(path), "classifier")
        try:
            card = rundir.read_json(str(path / CARD))
        except ValueError:  # not JSON
            card = None
        name = card.get("model", MODEL_FILE) if isinstance(card, dict) else None
        if not isinstance(name, str) or Path(name).name != name or not (path / name).is_file():
            raise RefsiftError(f"{spec}: its {CARD} does not name a model file in the directory")
        model_file, label = str(path / name), label or card.get("label")
        # A classifier cut short or edited still loads and scores every document, wrongly: its digest says so.
        if card.get("model_sha256") != ledger.sha256(model_file):
            raise RefsiftError(
                f"{spec}: {name} is not the model its {CARD} records (SHA-256 differs): distill it again"
            )
    else:
        model_file = spec
        if label is None:
            raise RefsiftError("--label: which label's probability is the score (a fastText file has no card)")
    kernel.load(local_copy(model_file), label)
    return model_file, label, card


def build(pipeline: beam.Pipeline, cfg: ClassifyConfig, out: str, tasks, done, model_file: str, label: str) -> None:
    (
        reading.read_chunks(pipeline, out, tasks, done, cfg)
        | "ClassifyDocuments" >> ClassifyDocuments(classifier=model_file, label=label, run=out)
        | "CommitChunks" >> CommitChunks(run=out, schemas=SCHEMAS)
    )


def classifier_differences(saved: dict, current: dict) -> list[str]:
    old, new = saved.get("classifier", {}), current.get("classifier", {})
    if (old.get("sha256"), old.get("label")) != (new.get("sha256"), new.get("label")):
        return [f"the classifier is not the one the run was classified with ({old.get('spec')})"]
    return []


def run(cfg: ClassifyConfig, beam_args: list[str] = (), on_start=None) -> dict:
    """Classifies `cfg.inputs` into `cfg.out` (or finishes it with `cfg.resume`); returns
    the manifest."""
    import fasttext

    options = runners.pipeline_options(list(beam_args))
    cfg = reading.resolve_format(cfg)
    tasks, identity = plan_tasks(
        list(cfg.inputs), format=cfg.format, text_per_line=cfg.text_per_line, task_size=cfg.task_size
    )
    reading.check_dedup(cfg, identity)
    model_file, label, card = resolve_classifier(cfg.classifier, cfg.label)
    job = executor.ChunkJob(
        out=cfg.out,
        tasks=tasks,
        identity=identity,
        settings={k: v for k, v in asdict(cfg).items() if k != "classifier"},
        runtime=RUNTIME_SETTINGS,
        schemas=SCHEMAS,
        views={},
        build=lambda pipeline, out, tasks, done: build(
            pipeline, replace(cfg, out=out), out, tasks, done, model_file, label
        ),
        record={
            "mode": "classify",
            "classifier": {
                "spec": cfg.classifier,
                "model": model_file,
                "label": label,
                "sha256": ledger.sha256(model_file),
                "card": {k: card[k] for k in ("source", "rule", "metrics") if k in card},
            },
        },
        differences=classifier_differences,
        progress_roles=["classifier"],
        activity="classifying",
        per_core=True,
        protect=[i["path"] for i in identity if "://" not in i["path"]]
        + [cfg.classifier]
        + ([cfg.dedup] if cfg.dedup else []),
        versions={"fasttext": getattr(fasttext, "__version__", "unknown"), "apache_beam": beam.__version__},
    )
    announce = (lambda out: on_start(replace(cfg, out=out))) if on_start else None
    return executor.execute(job, options, overwrite=cfg.overwrite, resume=cfg.resume, on_start=announce)
