"""The selection pipeline: a scored run directory -> a training mixture.

    examples shards -> RankDocuments (SQL --by/--where per Arrow batch) -> exact-duplicate
    removal -> FillBudget per source (budget, mixture shares, upsampling) or per cluster
    (--per-cluster: k-means over the candidates' embeddings, on the launcher)
    tokens shards + chosen documents -> LabelTokens (Rho-1 token selection) -> export shards

Global token thresholds come from Beam's ApproximateQuantiles over every scored token. The
token table is never shuffled: its rows stream past a side input holding only the chosen
documents' ids (and a window's text is decoded from its token ids), so selection runs on
Dataflow over runs far larger than one machine. On the launcher it then writes
`selection.json` and registers the selection in the run's catalog as `selection_<name>`.

Run it with `refsift select` (see `refsift select --help`) or `refsift.pipelines.select.run`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsDict, AsSingleton

from refsift import catalog
from refsift.config import EXPORT_FORMATS, SelectConfig
from refsift.errors import RefsiftError
from refsift.jobs import reading, rundir, runners
from refsift.jobs.runners import pipeline_options
from refsift.kernels import selection
from refsift.schemas import CLUSTERS_SCHEMA, DOCUMENT_EXPORT_SCHEMA, EXPORT_SCHEMA
from refsift.transforms import WriteShards
from refsift.transforms.fill_budget import FillBudget
from refsift.transforms.label_tokens import LabelTokens
from refsift.transforms.rank_documents import RankDocuments, ranking_query, ranking_sql
from refsift.transforms.read_parquet import ReadParquet

QUANTILES = 1001  # global thresholds to 0.1% of the token distribution


def validate(cfg: SelectConfig, manifest: dict) -> None:
    """Refuses, before any work, a selection that would fail or mean nothing."""
    try:
        cfg.rule  # noqa: B018 (validates the token rule)
        budget = selection.Budget.parse(cfg.budget) if cfg.budget else None
        shares = selection.parse_mix(cfg.mix) if cfg.mix else None
    except ValueError as err:
        raise RefsiftError(str(err)) from None
    if is_classification(manifest) and cfg.tokens != "all":
        raise RefsiftError("a classification run has no per-token scores: --tokens selects tokens of scoring runs")
    if cfg.tokens == "excess" and "reference" not in manifest["roles"]:
        raise RefsiftError("--tokens excess needs a run scored with a --reference model")
    if shares and cfg.temperature is not None:
        raise RefsiftError("give --mix or --temperature, not both")
    if cfg.per_cluster is not None:
        if shares or cfg.temperature is not None:
            raise RefsiftError("--per-cluster splits the budget across clusters: give no --mix or --temperature")
        if cfg.per_cluster < 1:
            raise RefsiftError("--per-cluster must be a number of clusters, at least 1")
        if not rundir.is_local(cfg.run):
            raise RefsiftError("--per-cluster embeds the run's documents on this machine: give a local run directory")
    if cfg.mixture and budget and budget.kind == "documents":
        raise RefsiftError("a mixture splits tokens: give --budget as a percentage or as NNNtok")
    if cfg.temperature is not None and not 0 < cfg.temperature < math.inf:
        raise RefsiftError("--temperature must be a positive number")
    if cfg.dedup not in ("exact", "near", "none"):
        rundir.require(cfg.dedup, "dedup")
    if cfg.format not in EXPORT_FORMATS:
        raise RefsiftError(f"--format must be one of {', '.join(EXPORT_FORMATS)}")
    if not rundir.is_local(cfg.run):
        return
    ranked = ranking_sql(cfg.by, cfg.where, cfg.order)
    con = catalog.connect(cfg.run)
    try:  # on the launcher, not on a worker: a bad expression, a --by that ranks nothing, a missing source
        with ranking_query(con, cfg.timeout):
            candidates, ranked_by = con.execute(
                f"SELECT count(*), count(score) FILTER (WHERE isfinite(score)) FROM ({ranked}) WHERE keep"
            ).fetchone()
        if cfg.by and candidates and not ranked_by:
            raise RefsiftError(
                f"--by {cfg.by} is NULL for every candidate document: does the run have the roles it needs "
                "(learnability and novelty need --finetuned, excess_loss --reference, learning_percentage checkpoints)?"
            )
        if shares:
            sources = {s for (s,) in con.execute("SELECT DISTINCT source FROM examples").fetchall()}
            missing = sorted(set(shares) - sources)
            if missing:
                have = ", ".join(sorted(sources))
                raise RefsiftError(f"--mix names sources the run does not have: {', '.join(missing)} (it has {have})")
    finally:
        con.close()


def plan(_, cfg: SelectConfig, available: dict, counts: dict) -> dict:
    """Per-group weight limits and repeats, from what the candidates hold.

    Groups are sources for a mixture, clusters with --per-cluster (each the same share of
    its tokens, as sources with --temperature 1), else one group "all". Weights are tokens
    for token budgets and mixtures, else documents.
    """
    budget = selection.Budget.parse(cfg.budget) if cfg.budget else None
    if not cfg.mixture:
        weight, limit = budget.limit(counts.get("documents", 0)) if budget else ("documents", math.inf)
        return {"weight": weight, "limits": {"all": limit}, "sources": {}}
    total_tokens = sum(available.values())
    if budget is None:
        total = None
    elif budget.kind == "fraction":
        total = math.ceil(budget.value * total_tokens)
    else:
        total = int(budget.value)
    shares = selection.parse_mix(cfg.mix) if cfg.mix else selection.temperature_shares(available, cfg.temperature or 1)
    if total is None:  # the largest mixture the sources fill without repeating anything
        total = int(min(available.get(s, 0) / share for s, share in shares.items()))
    try:
        sources = selection.plan_mixture(available, shares, total, cfg.upsample)
    except ValueError as err:
        raise RefsiftError(str(err)) from None
    return {
        "weight": "tokens",
        "total": total,
        "shares": shares,
        "limits": {s: p.budget for s, p in sources.items()},
        "sources": {s: {"budget": p.budget, "repeats": p.repeats, "note": p.note} for s, p in sources.items()},
    }


def repeats(group_chosen, the_plan: dict):
    """(doc_id, (source, times, scored tokens)) for each chosen document; upsampled sources repeat documents
    (every one floor(r) times, the best ones once more) until their share is met."""
    group, chosen = group_chosen
    r = the_plan["sources"].get(group, {}).get("repeats", 1.0)
    times = [max(1, math.floor(r))] * len(chosen)
    if r > 1:
        missing = round(r * sum(c[2] for c in chosen)) - sum(t * c[2] for t, c in zip(times, chosen))
        for i, c in enumerate(chosen):
            if missing <= 0:
                break
            times[i] += 1
            missing -= c[2]
    for candidate, t in zip(chosen, times):
        yield candidate[1], (candidate[4], t, candidate[5])


def _sum_tuples(values):
    return tuple(map(sum, zip(*values))) if values else ()


@contextlib.contextmanager
def candidate_view(cfg: SelectConfig, removed: str | None):
    """A connection to a local run's catalog with a `candidates` view: one row per document
    that passes --where and is no copy a dedup run set aside."""
    import pyarrow as pa

    skip = sorted(reading.removed(removed)) if removed else []
    con = catalog.connect(cfg.run)
    try:
        con.register("copies", pa.table({"doc_id": pa.array(skip, type=pa.string())}))
        con.execute(
            f"CREATE TEMP VIEW candidates AS SELECT * FROM ({ranking_sql(cfg.by, cfg.where, cfg.order)}) "
            "WHERE keep AND doc_id NOT IN (SELECT doc_id FROM copies)"
        )
        yield con
    finally:
        con.close()


def launcher_plan(cfg: SelectConfig, removed: str | None, clusters=None) -> dict:
    """The plan from a local run's catalog: the candidates' tokens per group (source, or
    cluster from the `clusters` table) and their number, by one DuckDB query over one row
    per document (no job needed for it)."""
    with candidate_view(cfg, removed) as con:
        if clusters is not None:
            con.register("clusters", clusters)
            query = "SELECT cluster, sum(n_tokens), count(*) FROM candidates JOIN clusters USING (doc_id) GROUP BY 1"
        else:
            query = "SELECT source, sum(n_tokens), count(*) FROM candidates GROUP BY 1"
        rows = con.execute(query).fetchall()
    available = {group: int(tokens) for group, tokens, _ in rows}
    return plan(None, cfg, available, {"documents": sum(n for *_, n in rows)})


HASHED_DIMENSIONS = 2048  # TF-IDF columns when no sentence-embedding model is installed


def cluster_candidates(cfg: SelectConfig, removed: str | None, path: str):
    """Small2Large's clusters (Mekala et al. 2024): the candidates embedded and split by
    spherical k-means into --per-cluster clusters, on the launcher, written to `path` as
    (doc_id, cluster) for the job and for the user. Returns the table and what
    selection.json records of it."""
    import pyarrow as pa

    from refsift.kernels import analysis
    from refsift.transforms.commit_chunks import write_table

    with candidate_view(cfg, removed) as con:
        columns = {c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE examples)").fetchall()}
        prompt = "e.prompt" if "prompt" in columns else "NULL"
        rows = con.execute(
            f"SELECT c.doc_id, e.text, {prompt}, e.source FROM candidates c JOIN examples e USING (doc_id) "
            "ORDER BY c.doc_id"
        ).fetchall()
    if cfg.per_cluster >= len(rows):
        raise RefsiftError(
            f"--per-cluster {cfg.per_cluster}: as many clusters as the {len(rows)} candidates or more, each too small "
            "to give a share of its tokens; ask for fewer"
        )
    ids = [doc_id for doc_id, *_ in rows]
    # Small2Large embeds an instruction pair as "Instruction: ... Response: ..."; other documents as they are.
    texts = [t if p is None else f"Instruction: {p.strip()} Response: {t[len(p) :].strip()}" for _, t, p, _ in rows]
    vectors, method = analysis.embed(texts, dim=HASHED_DIMENSIONS)
    labels = analysis.kmeans(vectors, cfg.per_cluster, seed=cfg.seed) if rows else []
    width = len(str(cfg.per_cluster - 1))
    names = [f"cluster{label:0{width}d}" for label in labels]
    table = pa.table({"doc_id": ids, "cluster": names}, schema=CLUSTERS_SCHEMA)
    write_table(table, path)
    sizes = dict(sorted(Counter(names).items()))
    profile = selection.cluster_profile(names, [source for *_, source in rows])
    return table, {"k": cfg.per_cluster, "embedding": method, "documents": len(ids), "sizes": sizes, **profile}


def choose_documents(
    p: beam.Pipeline, cfg: SelectConfig, removed: str | None = None, fixed: dict | None = None,
    clusters: str | None = None,
) -> dict:  # fmt: skip
    """Ranked documents -> the copies a dedup run (`removed`) did not keep set aside ->
    --where -> the budget or mixture plan -> (doc_id, (source, times, scored tokens)) for
    every chosen document. With `fixed`, the plan made on the launcher (`launcher_plan`)
    is a constant of the job; else the job makes it from the candidates it counts. With
    `clusters` (doc_id, cluster), the plan's groups are the clusters."""
    ranked = (
        p
        | "ReadExamples" >> ReadParquet(f"{cfg.run.rstrip('/')}/examples/*.parquet", batched=True)
        | "RankDocuments" >> RankDocuments(by=cfg.by, where=cfg.where, order=cfg.order, timeout=cfg.timeout)
    )
    if removed:  # the copies a dedup run did not keep: ids only in the side input, documents never grouped
        copies = reading.skipped(p, removed)
        unique = ranked | "Unique" >> beam.Filter(lambda d, skip: d["doc_id"] not in skip, AsDict(copies))
        duplicates = ranked | "Copies" >> beam.Filter(lambda d, skip: d["doc_id"] in skip, AsDict(copies))
    else:
        unique, duplicates = ranked, p | "NoDuplicates" >> beam.Create([])
    candidates = unique | "Where" >> beam.Filter(lambda d: d["keep"])
    if fixed is not None:
        the_plan = p | "Plan" >> beam.Create([fixed])
        plan_value, limits = fixed, fixed["limits"]
    else:
        available = (
            candidates
            | "SourceTokens" >> beam.Map(lambda d: (d["source"], d["n_tokens"]))
            | "SumSourceTokens" >> beam.CombinePerKey(sum)
        )
        counts = (
            candidates
            | "CountCandidates" >> beam.combiners.Count.Globally()
            | "AsCount" >> beam.Map(lambda n: ("documents", n))
        )
        the_plan = p | "One" >> beam.Create([None]) | "Plan" >> beam.Map(plan, cfg, AsDict(available), AsDict(counts))
        plan_value = AsSingleton(the_plan)
        limits = AsSingleton(the_plan | "Limits" >> beam.Map(lambda pl: pl["limits"]))
    cluster_of = None
    if clusters:
        pairs = p | "ReadClusters" >> ReadParquet(clusters) | "Pairs" >> beam.Map(lambda r: (r["doc_id"], r["cluster"]))
        cluster_of = AsDict(pairs)

    def keyed(d, the_plan, cluster_of=None):
        group = cluster_of[d["doc_id"]] if cluster_of is not None else d["source"] if cfg.mixture else "all"
        weight = d["n_tokens"] if the_plan["weight"] == "tokens" else 1
        return group, (d["score"], d["doc_id"], weight, group, d["source"], d["n_tokens"])

    selected = (
        candidates
        | "ByGroup" >> beam.Map(keyed, plan_value, cluster_of)
        | "FillBudget" >> FillBudget(limits=limits)
        | "Repeats" >> beam.FlatMap(repeats, plan_value)
    )
    return {"ranked": ranked, "unique": unique, "duplicates": duplicates, "plan": the_plan, "selected": selected}


def excess_threshold(p: beam.Pipeline, tokens: str, ratio: float):
    """The excess loss above which `ratio` of all scored tokens lie (approximate quantiles)."""
    return (
        p
        | "ReadTokensForThreshold" >> ReadParquet(tokens, columns=["nll_model", "nll_reference"])
        | "Excess"
        >> beam.FlatMap(lambda w: [x for x in selection.excess(w["nll_model"], w["nll_reference"]) if x is not None])
        | "Quantiles" >> beam.ApproximateQuantiles.Globally(QUANTILES)
        | "Threshold" >> beam.Map(lambda q: q[round((1 - ratio) * (len(q) - 1))] if q else math.inf)
    )


def write_statistics(docs: dict, rows, threshold, path: str) -> None:
    """Counts per source before and after, the plan and the threshold, as one JSON file."""

    def after(r):  # a window: (1, tokens trained on, tokens); a document of a classification run: its words
        if "labels" not in r:
            return 1, r["n_tokens"], r["n_tokens"]
        return 1, sum(x != selection.IGNORE for x in r["labels"]), len(r["labels"])

    stats = [
        docs["ranked"] | "Before" >> beam.Map(lambda d: (("before", d["source"]), (1, d["n_tokens"]))),
        docs["duplicates"] | "Dups" >> beam.Map(lambda d: (("duplicates", d["source"]), (1, d["n_tokens"]))),
        docs["unique"]
        | "Filtered" >> beam.Filter(lambda d: not d["keep"])
        | "FilteredStat" >> beam.Map(lambda d: (("filtered", d["source"]), (1, d["n_tokens"]))),
        docs["selected"]
        | "AfterDocs" >> beam.Map(lambda kv: (("documents", kv[1][0]), (1, kv[1][1], kv[1][1] * kv[1][2]))),
        rows | "AfterRows" >> beam.Map(lambda r: (("after", r["source"]), after(r))),
    ]
    summed = stats | "AllStats" >> beam.Flatten() | "SumStats" >> beam.CombinePerKey(_sum_tuples)
    extras = [docs["plan"] | "PlanStat" >> beam.Map(lambda pl: (("plan", ""), pl))]
    if threshold is not None:
        extras.append(threshold | "ThresholdStat" >> beam.Map(lambda t: (("threshold", ""), t)))
    (
        [summed, *extras]
        | "Stats" >> beam.Flatten()
        | "StatsList" >> beam.combiners.ToList()
        | "StatsJson" >> beam.Map(lambda items: json.dumps([[k[0], k[1], v] for k, v in items], default=str))
        | "WriteStats" >> beam.Map(write_text, f"{path}.json")
    )


def is_classification(manifest: dict) -> bool:
    """A run of `refsift classify`: documents with a classifier's score, no tokens."""
    return manifest.get("mode") == "classify"


def document_rows(example: dict, chosen: dict):
    """A chosen document of a classification run as an export row, repeated as chosen."""
    if example["doc_id"] not in chosen:
        return
    _, times = chosen[example["doc_id"]]
    row = {k: example[k] for k in ("doc_id", "source", "text", "n_tokens")}
    for _ in range(times):
        yield row


def build(
    p: beam.Pipeline, cfg: SelectConfig, data_dir: str, manifest: dict, removed: str | None = None, fixed=None,
    clusters: str | None = None,
) -> None:  # fmt: skip
    """Adds the selection steps; `manifest` is the run's (its tokenizer decodes window text).
    A classification run has no tokens: its chosen documents are exported as text."""
    docs = choose_documents(p, cfg, removed, fixed, clusters)
    if is_classification(manifest):
        chosen = docs["selected"] | "SourceAndTimes" >> beam.Map(lambda kv: (kv[0], kv[1][:2]))
        rows = (
            p
            | "ReadExamplesForExport" >> ReadParquet(f"{cfg.run.rstrip('/')}/examples/*.parquet")
            | "DocumentRows" >> beam.FlatMap(document_rows, AsDict(chosen))
        )
        write_rows(rows, cfg.format, data_dir, DOCUMENT_EXPORT_SCHEMA)
        write_statistics(docs, rows, None, f"{cfg.out.rstrip('/')}/_stats")
        return
    # The token shards are read once per consumer: labelling waits for the threshold, and a
    # shared read would make the runner hold every row until then.
    tokens = f"{cfg.run.rstrip('/')}/tokens/*.parquet"
    rule = cfg.rule
    threshold = excess_threshold(p, tokens, rule.ratio) if rule.mode == "excess" and rule.scope == "global" else None
    chosen = docs["selected"] | "SourceAndTimes" >> beam.Map(lambda kv: (kv[0], kv[1][:2]))
    rows = (
        p
        | "ReadTokens" >> ReadParquet(tokens)
        | "LabelTokens"
        >> LabelTokens(
            rule=rule,
            chosen=AsDict(chosen),
            tokenizer=manifest["tokenizer"]["spec"],
            prefix=manifest["tokenizer"].get("prefix_token_id"),
            threshold=AsSingleton(threshold) if threshold else None,
            trust_remote_code=manifest["settings"].get("trust_remote_code", False),
        )
    )
    settings = manifest.get("settings", {})
    if settings.get("prompt_field") or settings.get("messages_field"):  # instruction data: TRL's own formats too
        (
            p
            | "ReadExamplesForSft" >> ReadParquet(f"{cfg.run.rstrip('/')}/examples/*.parquet")
            | "SftRecords" >> beam.FlatMap(sft_records, AsDict(chosen))
            | "WriteSft" >> WriteShards(directory=f"{cfg.out.rstrip('/')}/sft", schema=None)
        )
    write_rows(rows, cfg.format, data_dir, EXPORT_SCHEMA)
    write_statistics(docs, rows, threshold, f"{cfg.out.rstrip('/')}/_stats")


def write_rows(rows, fmt: str, data_dir: str, schema) -> None:
    """The export: Parquet, or JSON lines ("hf" is converted from Parquet on the launcher)."""
    rows | "WriteData" >> WriteShards(directory=data_dir, schema=None if fmt == "jsonl" else schema)


def write_text(text: str, path: str) -> None:
    """One element as a whole file (the statistics): written once, under its final name."""
    with FileSystems.create(path) as handle:
        handle.write(text.encode("utf-8"))


def sft_records(example: dict, chosen: dict):
    """A chosen instruction example in TRL's prompt-completion form, repeated as chosen:
    {prompt, completion} strings, or for a conversation one record per assistant turn with
    the conversation before it as the prompt and the turn as the completion (so TRL trains
    on assistant turns only, the tokens `refsift score` scored; a `{messages}` record would
    train on every token)."""
    if example["doc_id"] not in chosen:
        return
    _, times = chosen[example["doc_id"]]
    base = {"doc_id": example["doc_id"], "source": example["source"]}
    if example.get("messages"):
        messages = [{"role": m["role"], "content": m["content"]} for m in example["messages"]]
        records = [
            {**base, "prompt": messages[:i], "completion": [m]}
            for i, m in enumerate(messages)
            if m["role"] == "assistant"
        ]
    else:
        records = [{**base, "prompt": example["prompt"], "completion": example["text"][len(example["prompt"]) :]}]
    for _ in range(times):
        yield from records


def deduplicate(cfg: SelectConfig, out: str, beam_args: list[str]) -> str | None:
    """The dedup run whose copies the selection leaves out: one given (a directory), or one
    made here over the run's documents into OUT/dedup (exact: identical texts; near: MinHash
    with `refsift dedup`'s defaults); None for --dedup none."""
    from refsift.pipelines import dedup

    if cfg.dedup == "none":
        return None
    if cfg.dedup not in ("exact", "near"):
        return cfg.dedup
    made = dedup.DedupConfig(
        inputs=(f"{cfg.run.rstrip('/')}/examples/*.parquet",),
        out=f"{out}/dedup",
        format="parquet",
        id_field="doc_id",
        source_field="source",
        method="exact" if cfg.dedup == "exact" else "minhash",
    )
    dedup.run(made, beam_args)
    return made.out


def summarize(items: list, cfg: SelectConfig) -> dict:
    per_source: dict[str, dict] = {}
    extras = {}
    for kind, source, value in items:
        if kind in ("plan", "threshold"):
            extras[kind] = value
            continue
        entry = per_source.setdefault(source, {})
        if kind == "after":
            entry["after"] = {"windows": value[0], "selected_tokens": value[1], "tokens": value[2]}
        elif kind == "documents":
            entry["selected_documents"] = {"documents": value[0], "with_repeats": value[1], "tokens": value[2]}
        else:
            entry[kind] = {"documents": value[0], "tokens": value[1]}
    return {"per_source": dict(sorted(per_source.items())), **extras}


def run(cfg: SelectConfig, beam_args: list[str] = ()) -> dict:
    """Selects from `cfg.run` into `cfg.out`; returns what `selection.json` records."""
    started = time.time()
    options = pipeline_options(list(beam_args))  # refuses unknown options before any work
    rundir.require(cfg.run, "run")
    if cfg.mix_from:
        if cfg.mix or cfg.temperature is not None or cfg.per_cluster is not None:
            raise RefsiftError("--mix-from gives the mixture: no --mix, --temperature or --per-cluster with it")
        from refsift.pipelines.mix import weights_of

        cfg = replace(cfg, mix=weights_of(cfg.mix_from))
    with FileSystems.open(rundir.join(cfg.run, "manifest.json")) as handle:
        manifest_bytes = handle.read()
    manifest = json.loads(manifest_bytes)
    validate(cfg, manifest)
    reads = [cfg.run, *([cfg.dedup] if cfg.dedup not in ("exact", "near", "none") else [])]
    reads += [cfg.mix_from] if cfg.mix_from else []
    with rundir.claim(cfg.out, kind="selection", overwrite=cfg.overwrite, protect=reads) as claim:
        out = claim.path.rstrip("/")
        data_dir = f"{out}/data" if cfg.format != "hf" else f"{out}/_parquet"
        removed = deduplicate(cfg, out, beam_args)
        clusters, table, clustered = None, None, None
        if cfg.per_cluster:
            clusters = f"{out}/{catalog.CLUSTERS_FILE}"
            table, clustered = cluster_candidates(cfg, removed, clusters)
        fixed = launcher_plan(cfg, removed, table) if rundir.is_local(cfg.run) else None
        pipeline = beam.Pipeline(options=options)
        build(pipeline, cfg, data_dir, manifest, removed, fixed, clusters)
        runners.run_job(pipeline, out, what="selection", resumable=False)

        with FileSystems.open(f"{out}/_stats.json") as handle:
            stats = summarize(json.loads(handle.read()), cfg)
        FileSystems.delete([f"{out}/_stats.json"])
        if cfg.format == "hf":
            import datasets

            shards = [m.path for m in FileSystems.match([f"{data_dir}/*.parquet"])[0].metadata_list]
            datasets.load_dataset("parquet", data_files=shards, split="train").save_to_disk(f"{out}/data")
            FileSystems.delete([data_dir])
        record = {
            **rundir.header(),
            "run": cfg.run,
            "run_manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "settings": asdict(cfg),
            "token_rule": asdict(cfg.rule),
            **stats,
            **({"clusters": clustered} if clustered else {}),
            "view": cfg.view_name,
            "export": "documents" if is_classification(manifest) else "windows",
            "wall_time_s": round(time.time() - started, 2),
        }
        rundir.write_json(f"{out}/selection.json", record)
        if rundir.is_local(cfg.run) and rundir.is_local(out) and cfg.format != "hf":
            relative = os.path.relpath(Path(out).resolve(), Path(cfg.run).resolve())
            fmt = "json" if cfg.format == "jsonl" else "parquet"
            catalog.register_table(cfg.run, cfg.view_name, f"{relative}/data/*.{cfg.format}", fmt)
            if clusters:
                name = cfg.view_name.replace("selection_", "clusters_", 1)
                catalog.register_table(cfg.run, name, f"{relative}/{catalog.CLUSTERS_FILE}")
        claim.complete()
    return record
