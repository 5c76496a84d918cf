"""`refsift ablate`: does this selection (or mixture) train a better model than that one?

    arms + held-out documents (launcher: read, tokenised, budgets checked, each job's rows
    written to OUT/_jobs/) -> (arm, seed) jobs -> TrainProxies -> runs, doc_losses, curves
    (Parquet) -> catalog -> paired comparisons (report.json) -> report.html

Every arm's proxy is fed the same number of tokens (`--tokens`), starts from the same
initialisation for a seed, and is measured on the same documents, scored as `refsift score`
scores; arms are compared seed by seed and document by document
(`refsift.kernels.ablation.paired`). An arm is a `refsift select` directory (its rows and
labels, so a token selection trains on its selected tokens only), a `refsift mix` directory
(its proposed mixture), or weights over the sources of `--input` (natural, uniform, or
`code=0.3,prose=0.7`).

Memory: the launcher holds the held-out documents and, one arm at a time, its rows; a
worker holds one proxy and one job's rows.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from refsift import catalog, models
from refsift.config import AblateConfig
from refsift.corpus.tasks import source_name
from refsift.errors import RefsiftError
from refsift.jobs import reading, rundir, runners
from refsift.kernels import ablation, selection, training
from refsift.kernels.encode import prefix_id
from refsift.kernels.proxy import budget_rows, mixture_rows, parse_proxy
from refsift.schemas.ablation import CURVES_SCHEMA, DOC_LOSSES_SCHEMA, RUNS_SCHEMA
from refsift.transforms.train_proxies import ProxySettings, TrainProxies, eval_path, is_done, job_path, results

TABLES = {"runs": RUNS_SCHEMA, "doc_losses": DOC_LOSSES_SCHEMA, "curves": CURVES_SCHEMA}
WEIGHT_WORDS = ("natural", "uniform")


@dataclass
class Arm:
    """An arm: a selection directory's rows, or shares over the --input sources (named, or
    proposed by a `refsift mix` directory)."""

    name: str
    spec: str
    selection: str | None = None
    shares: dict[str, float] | None = None


def parse_arms(cfg: AblateConfig) -> list[Arm]:
    arms = []
    for text in cfg.arms:
        name, _, spec = text.partition("=")
        name, spec = name.strip(), spec.strip()
        if spec in WEIGHT_WORDS or ("=" in spec and not Path(spec).exists()):
            if not cfg.inputs:
                raise RefsiftError(f"--arm {name}={spec} weights the sources of --input: give --input")
            arms.append(Arm(name, spec))
        elif Path(spec).is_dir() and (rundir.marker(spec) or {}).get("kind") == "mixture":
            from refsift.pipelines.mix import weights_of

            if not cfg.inputs:
                raise RefsiftError(f"--arm {name}={spec} is a mixture of sources: give them with --input")
            arms.append(Arm(name, weights_of(spec)))  # the mixture `refsift mix` proposed
        elif Path(spec).is_dir():
            rundir.require(spec, "selection")
            arms.append(Arm(name, spec, selection=spec))
        else:
            raise RefsiftError(
                f"--arm {name}={spec}: no such selection directory (or weights: natural, uniform, a=0.3,b=0.7)"
            )
    return arms


def selection_tokenizer(path: str) -> tuple[str, str] | None:
    """(the run's tokenizer spec, its vocabulary fingerprint) of a selection, from its run's manifest."""
    try:
        record = json.loads(Path(path, "selection.json").read_text())
        manifest = json.loads(Path(record["run"], "manifest.json").read_text())
        return manifest["tokenizer"]["spec"], manifest["tokenizer"]["vocab_fingerprint"]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def resolve_tokenizer(cfg: AblateConfig, arms: list[Arm]):
    """The proxies' tokenizer; refuses arms made with different tokenizers."""
    found = {arm.name: selection_tokenizer(arm.selection) for arm in arms if arm.selection}
    missing = [name for name, t in found.items() if t is None]
    if missing:
        raise RefsiftError(f"--arm {missing[0]}: its selection's run (and so its tokenizer) cannot be read")
    prints = {name: fp for name, (_, fp) in found.items()}
    if len(set(prints.values())) > 1:
        a, b = sorted(prints)[:2]
        raise RefsiftError(f"arms {a} and {b} were made with different tokenizers: a proxy reads one")
    spec = cfg.tokenizer or next((spec for spec, _ in found.values()), None)
    if spec is None:
        raise RefsiftError("give --tokenizer: the weights arms need one to tokenise --input")
    tokenizer = models.load_tokenizer(spec)
    if prints and models.vocab_fingerprint(tokenizer) not in prints.values():
        raise RefsiftError(f"--tokenizer {spec} is not the tokenizer the select arms' runs were scored with")
    return spec, tokenizer


def source_blocks(cfg: AblateConfig, tokenizer) -> dict[str, list[list[int]]]:
    """Each --input source's documents, tokenised and packed into blocks of --block tokens."""
    documents, _ = reading.read_documents(list(cfg.inputs), cfg, 0, "sources")
    blocks = {}
    for source, docs in sorted(documents.items()):
        ids = tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]
        blocks[source] = training.pack(ids, cfg.block, tokenizer.eos_token_id)
    return blocks


def shares_of(arm: Arm, available: dict[str, int]) -> dict[str, float]:
    if arm.spec == "natural":
        return ablation.natural(available)
    if arm.spec == "uniform":
        return ablation.uniform(available)
    try:
        shares = selection.parse_mix(arm.spec)
    except ValueError as err:
        raise RefsiftError(f"--arm {arm.name}: {err}") from None
    unknown = sorted(set(shares) - set(available))
    if unknown:
        raise RefsiftError(f"--arm {arm.name} names sources --input does not have: {', '.join(unknown)}")
    return shares


def plan_arms(cfg: AblateConfig, arms: list[Arm], blocks: dict) -> dict[str, tuple[list[dict] | None, float]]:
    """Each arm's rows (a selection's; None for weights, whose rows are drawn per seed) and
    the most times it reads any of its data, refusing, before any work, an arm that would
    repeat its data more than --max-epochs times."""
    from refsift.pipelines.finetune import load_export

    available = {s: len(b) * cfg.block for s, b in blocks.items()}
    planned = {}
    for arm in arms:
        if arm.selection:
            rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in load_export(arm.selection)]
            per_epoch = sum(len(r["input_ids"]) for r in rows)
            epochs = {"export": cfg.tokens / per_epoch if per_epoch else math.inf}
        else:
            rows, arm.shares = None, shares_of(arm, available)
            epochs = ablation.epochs(arm.shares, available, cfg.tokens)
        worst = max(epochs, key=epochs.get)
        if epochs[worst] > cfg.max_epochs:
            what = "its rows" if arm.selection else f"source {worst}"
            raise RefsiftError(
                f"--arm {arm.name} would read {what} {epochs[worst]:.1f} times to make --tokens {cfg.tokens} "
                f"(--max-epochs {cfg.max_epochs:g}): fewer tokens, or more data"
            )
        planned[arm.name] = rows, float(epochs[worst])
    return planned


def write_jobs(cfg: AblateConfig, arms: list[Arm], blocks: dict, planned: dict) -> list[dict]:
    """Each (arm, seed) job's rows under OUT/_jobs/; returns the jobs."""
    jobs = []
    for arm in arms:
        rows, most = planned[arm.name]
        for seed in range(cfg.seeds):
            if rows is not None:
                chosen = budget_rows(rows, cfg.tokens, seed)
            else:
                drawn = mixture_rows(blocks, arm.shares, cfg.tokens, cfg.block, seed)
                chosen = [{"input_ids": r["input_ids"], "labels": None} for r in drawn]
            path = Path(job_path(cfg.out, arm.name, seed))
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.table({"input_ids": [r["input_ids"] for r in chosen], "labels": [r["labels"] for r in chosen]})
            pq.write_table(table, path)
            jobs.append({"arm": arm.name, "seed": seed, "max_epochs": most})
    return jobs


def read_eval(cfg, paths: list[str]) -> list[dict]:
    """The held-out documents of `paths`, each with its file's stem (written to OUT/_eval.parquet)."""
    documents, _ = reading.read_documents(paths, cfg, 0, "eval")
    rows = [
        {"doc_id": d["doc_id"], "text": d["text"], "prompt": d["prompt"], "messages": None, "source": d["source"],
         "eval": source_name(d["input"])}
        for docs in documents.values() for d in docs
    ]  # fmt: skip
    return rows


PINNED = "_settings.json"  # the settings a directory's proxies are trained with
RUNTIME = ("out", "overwrite", "resume", "device")  # what a resumed command may change


@contextmanager
def claim_proxies(cfg, kind: str, protect: list[str]):
    """Claims `cfg.out` for an ablation or a mixture search. A resumed one must be given the
    settings it started with, since its committed proxies were trained with them: otherwise
    one line, and nothing trained or written."""
    with rundir.claim(cfg.out, kind=kind, overwrite=cfg.overwrite, resume=cfg.resume, protect=protect) as claim:
        pinned = rundir.join(claim.path, PINNED)
        current = json.loads(json.dumps({k: v for k, v in vars(cfg).items() if k not in RUNTIME}, default=str))
        saved = rundir.read_json(pinned) if claim.resumed else None
        changed = [f"--{k.replace('_', '-')} was {saved.get(k)!r}, now {v!r}" for k, v in current.items()
                   if saved is not None and saved.get(k) != v]  # fmt: skip
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise RefsiftError(f"cannot resume {cfg.out}: {changed[0]}{more}; its proxies were trained so")
        if claim.resumed:
            claim.reopen()
        rundir.write_json(pinned, current)
        yield claim


def proxy_settings(cfg, tokenizer_spec: str, tokenizer, *, curve_points: int) -> ProxySettings:
    """How every proxy of an ablation or a mixture search trains and is measured (its options)."""
    return ProxySettings(
        proxy=cfg.proxy, tokenizer=tokenizer_spec, batch_size=cfg.batch_size, lr=cfg.lr, schedule=cfg.schedule,
        warmup_ratio=cfg.warmup_ratio, curve_points=curve_points, prefix_id=prefix_id(tokenizer, cfg.prefix),
        max_length=cfg.max_length, context=cfg.context if cfg.windows == "context" else None, device=cfg.device,
    )  # fmt: skip


def train(cfg, jobs: list[dict], settings: ProxySettings, options) -> dict[str, list[dict]]:
    """Trains the jobs not yet committed (one Beam element each), then writes the three tables
    from every job's committed rows; returns them."""
    pending = [job for job in jobs if not is_done(cfg.out, job)]
    if pending:
        pipeline = beam.Pipeline(options=options)
        _ = (
            pipeline
            | "Jobs" >> beam.Create(pending)
            | "Spread" >> beam.Reshuffle()
            | "TrainProxies" >> TrainProxies(out=cfg.out, settings=settings)
        )
        runners.run_job(pipeline, cfg.out, what=f"{len(pending)} proxies", resumable=False)
    tables = results(cfg.out, jobs)
    for table, rows in tables.items():
        Path(cfg.out, table).mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=TABLES[table]), Path(cfg.out, table, "part-0.parquet"))
    return tables


def losses(rows: list[dict], arm: str, seeds: int) -> np.ndarray:
    """[seeds, documents] of an arm's held-out losses over `rows`, documents in id order."""
    mine = [r for r in rows if r["arm"] == arm and r["n_tokens"] > 0]
    docs = sorted({r["doc_id"] for r in mine})
    table = np.full((seeds, len(docs)), np.nan)
    index = {doc: i for i, doc in enumerate(docs)}
    for r in mine:
        table[r["seed"], index[r["doc_id"]]] = r["nll"]
    return table


def eval_sets(rows: list[dict]) -> dict[str, list[dict]]:
    """Each --eval file's rows, and, for a file holding several sources, each source's
    (named FILE/SOURCE)."""
    sets: dict[str, list[dict]] = {}
    for r in rows:
        sets.setdefault(r["eval"], []).append(r)
    for name, mine in list(sets.items()):
        sources = sorted({r["source"] for r in mine})
        if len(sources) > 1:
            for source in sources:
                sets[f"{name}/{source}"] = [r for r in mine if r["source"] == source]
    return dict(sorted(sets.items()))


def comparisons(doc_losses: list[dict], arms: list[str], seeds: int) -> list[dict]:
    """Every pair of arms on every eval set (a before b in --arm order)."""
    found = []
    for name, rows in eval_sets(doc_losses).items():
        table = {arm: losses(rows, arm, seeds) for arm in arms}
        for i, a in enumerate(arms):
            for b in arms[i + 1 :]:
                found.append({"a": a, "b": b, "eval": name, **ablation.paired(table[a], table[b])})
    return found


def run(cfg: AblateConfig, beam_args: list[str] = ()) -> dict:
    """Trains the proxies, compares the arms; returns report.json's content."""
    from refsift.pages import ablation as page
    from refsift.reports import ablation as findings

    options = runners.pipeline_options(list(beam_args))
    runners.check_device(cfg.device, options)
    if not rundir.is_local(cfg.out):
        raise RefsiftError("ablations are written to a local directory")
    arms = parse_arms(cfg)
    tokenizer_spec, tokenizer = resolve_tokenizer(cfg, arms)
    shape = parse_proxy(cfg.proxy)
    if shape is None:
        models.check_shared_tokenizer({"proxy": cfg.proxy, "tokenizer": tokenizer_spec})
    elif shape[1] < 1 or shape[0] < 1:
        raise RefsiftError("--proxy LxW needs at least one layer and a positive width")
    blocks = source_blocks(cfg, tokenizer) if cfg.inputs else {}
    planned = plan_arms(cfg, arms, blocks)
    held_out = read_eval(cfg, list(cfg.evals))
    protect = [*cfg.inputs, *cfg.evals, *(a.selection for a in arms if a.selection)]
    started = time.time()
    with claim_proxies(cfg, "ablation", protect) as claim:
        jobs = write_jobs(cfg, arms, blocks, planned)
        pq.write_table(pa.Table.from_pylist(held_out), eval_path(cfg.out))
        settings = proxy_settings(cfg, tokenizer_spec, tokenizer, curve_points=cfg.curve_points)
        tables = train(cfg, jobs, settings, options)
        catalog.build(cfg.out, TABLES, {})
        names = [a.name for a in arms]
        found = comparisons(tables["doc_losses"], names, cfg.seeds)
        record = {
            **rundir.header(),
            "settings": {k: v for k, v in vars(cfg).items()},
            "arms": {a.name: {"spec": a.spec, **({"shares": a.shares} if a.shares else {})} for a in arms},
            "tokenizer": tokenizer_spec,
            "eval_documents": len(held_out),
            "comparisons": found,
            "finding": findings.finding(found),
            "wall_time_s": round(time.time() - started, 2),
        }
        rundir.write_json(rundir.join(cfg.out, "report.json"), record)
        page.write(record, tables["curves"], tables["runs"], cfg.out)
        claim.complete()
    return record
