"""The scoring pipeline: read -> tokenize into windows -> score under each role -> write
shards, in chunks that are committed one by one; then, on the launcher, the checks, the
DuckDB catalog and the manifest.

    tasks ──> IndexCorpus (ids, row counts) ──────────────── side inputs ──┐
    tasks not yet done ──> ReadCorpus ──> TokenizeWindows ──> ScoreTokens[role] ... ──>
        SummarizeExamples ──> CommitChunks (shards, then a completion marker per chunk)

Where memory is bounded, and why. Only two things cross a shuffle: the task list (one small
record per file or byte range) and, in the index pass, (id, position) pairs. Documents,
their text and their tokens never do: each task is read, tokenized, scored and written by
one worker, chunk after chunk, through fused steps that hand a chunk on as soon as it is
made, so a worker holds one chunk (about `chunk_size` bytes of input, 1 MiB by default,
with its windows and losses as numpy arrays) and its models. A document's summary is built
in the chunk that holds all its windows, so nothing is joined. What grows with the corpus
is the index of ids (records with an id field) and the side inputs derived from it (the
repeated ids, and one number per task).

A ladder (`--ladder MODEL=SCORE`, PreSelect's predictive strength) adds a role per model.
A model that plays two roles (the ladder's first as `model`, say) is scored once. A ladder
model whose tokenizer is not the run's reads its own tokens (`ScoreDocuments`): it gets
per-document losses only, and predictive strength compares models by bits per byte.

Resuming. The plan (`_plan.json`) and `_chunks/<task>-<chunk>.json` completion markers say
what is done; chunk boundaries depend only on the input, so `--resume` re-reads the tasks
that are not complete, skips their committed chunks without parsing them, and scores the
rest: every document once, the same losses, conservation exact. A resumed run must have the
same inputs (paths, sizes, modification times), models (weights hashes) and settings; only
`--batch-size` may change.

Run it with `refsift score` (see `refsift score --help`) or `refsift.pipelines.score.run`.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import asdict, replace

import apache_beam as beam

from refsift import catalog, models
from refsift.config import RUNTIME_SETTINGS, ScoreConfig, window_context
from refsift.corpus.tasks import Task, plan_tasks
from refsift.errors import RefsiftError
from refsift.jobs import executor, reading, runners
from refsift.schemas import REJECTED_SCHEMA, examples_schema, tokens_schema
from refsift.transforms import ScoreTokens, SummarizeExamples, TokenizeWindows
from refsift.transforms.commit_chunks import CommitChunks
from refsift.transforms.score_documents import ScoreDocuments

log = logging.getLogger("refsift")


def table_schemas(roles: list[str], document_roles: list[str] = ()) -> dict:
    """The run's tables: `tokens` has a loss column per role that reads the run's tokens."""
    token_roles = [role for role in roles if role not in document_roles]
    return {"tokens": tokens_schema(token_roles), "examples": examples_schema(roles), "rejected": REJECTED_SCHEMA}


def scorers(cfg: ScoreConfig, document_roles: list[str]) -> list[tuple[str, str, tuple[str, ...], bool]]:
    """(role, spec, aliases, reads its own tokens) per distinct model, in role order: a
    model that plays several roles is scored once."""
    groups: dict[str, list[str]] = {}
    for role, spec in cfg.roles.items():
        groups.setdefault(spec, []).append(role)
    return [(roles[0], spec, tuple(roles[1:]), roles[0] in document_roles) for spec, roles in groups.items()]


def build(
    pipeline: beam.Pipeline, cfg: ScoreConfig, out: str, tasks: list[Task], done: dict, document_roles: list[str] = ()
) -> None:
    """Adds the scoring steps for `cfg` to `pipeline`; `done` maps tasks to committed chunks."""
    roles, context = list(cfg.roles), window_context(cfg.context, cfg.windows)
    chunks = reading.read_chunks(pipeline, out, tasks, done, cfg) | "TokenizeWindows" >> TokenizeWindows(
        tokenizer=cfg.model,
        max_length=cfg.max_length,
        context=context,
        prefix=cfg.prefix,
        trust_remote_code=cfg.trust_remote_code,
    )
    device = dict(device=cfg.device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code, run=out)
    shape = dict(batch_size=cfg.batch_size, max_length=cfg.max_length)
    for role, spec, aliases, own_tokens in scorers(cfg, list(document_roles)):
        if own_tokens:
            step = ScoreDocuments(
                role=role, model=spec, aliases=aliases, prefix=cfg.prefix, context=context, **shape, **device
            )
            chunks = chunks | f"ScoreDocuments[{role}]" >> step
        else:
            chunks = chunks | f"ScoreTokens[{role}]" >> ScoreTokens(
                role=role, model=spec, aliases=aliases, **shape, **device
            )
    (
        chunks
        | "SummarizeExamples" >> SummarizeExamples(roles=roles, learning=cfg.learning, ladder=cfg.ladder_scores)
        | "CommitChunks" >> CommitChunks(run=out, schemas=table_schemas(roles, document_roles))
    )


def check_models(cfg: ScoreConfig, options=None) -> dict:
    """Everything about the roles that can be refused before any work: tokenizers shared
    (a ladder model may read its own), loadable and able to encode, the prefix and the chat
    template available, weights that fit their configs, windows within every model's
    positions, the device present. Returns the manifest's tokenizer entry, with the roles
    that read their own tokens."""
    from refsift.kernels.encode import prefix_id

    runners.check_device(cfg.device, options or runners.pipeline_options([]))
    trust = cfg.trust_remote_code
    tokenizer = models.load_tokenizer(cfg.model, trust_remote_code=trust)
    fingerprint = models.vocab_fingerprint(tokenizer)
    try:
        prefix = prefix_id(tokenizer, cfg.prefix)
    except ValueError as err:
        raise RefsiftError(str(err)) from None
    if cfg.messages_field and not tokenizer.chat_template:
        raise RefsiftError(f"--messages-field: the tokenizer of {cfg.model} has no chat template")
    document_roles = []
    seen: dict[str, str] = {}
    for role in cfg.ladder_roles:  # one model under two names (lad1, lad1/, a copy) would count twice
        spec = cfg.roles[role]
        key = models.identity(spec)
        if key in seen:
            raise RefsiftError(f"--ladder: {spec} and {seen[key]} are the same model (the same weights)")
        seen[key] = spec
    for role, spec in cfg.roles.items():
        own = tokenizer if spec == cfg.model else models.load_tokenizer(spec, trust_remote_code=trust)
        if models.vocab_fingerprint(own) != fingerprint:
            if role not in cfg.ladder_roles:
                raise RefsiftError(
                    f"roles must share a tokenizer: {cfg.model} (model) and {spec} ({role}) have different vocabularies"
                )
            if cfg.prompt_field or cfg.messages_field or cfg.prefix == "none":
                raise RefsiftError(
                    f"{spec} ({role}) has a tokenizer of its own: its losses cover the same text as the run's only "
                    "for plain documents read after a prefix token (not with --prompt-field, --messages-field or "
                    "--prefix none)"
                )
            try:
                prefix_id(own, cfg.prefix)
            except ValueError as err:
                raise RefsiftError(f"{spec} ({role}): {err}") from None
            document_roles.append(role)
        models.check_weights(spec, own, trust_remote_code=trust)
        limit = models.position_limit(spec, trust_remote_code=trust)
        if limit is not None and cfg.max_length > limit:
            raise RefsiftError(f"--max-length {cfg.max_length} is more than {spec} ({role}) takes: at most {limit}")
    return {
        "spec": cfg.model,
        "vocab_fingerprint": fingerprint,
        "prefix_token_id": prefix,
        "own_tokens": document_roles,
    }


def versions() -> dict:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "apache_beam": beam.__version__}


def model_differences(saved: dict, current: dict) -> list[str]:
    """Models and tokenizer that keep a run from being resumed."""
    found = []
    identity = ("weights_sha256", "revision")
    for role in sorted(set(saved["roles"]) | set(current["roles"])):
        old, new = saved["roles"].get(role), current["roles"].get(role)
        if new is None:
            found.append(f"the run was also scored with a {role} model ({old.get('spec')}): give it again")
        elif old is None:
            found.append(f"the run has no {role} model")
        elif {k: old.get(k) for k in identity} != {k: new.get(k) for k in identity}:
            found.append(f"the {role} model is not the one the run was scored with ({old.get('spec')})")
    if saved["tokenizer"]["vocab_fingerprint"] != current["tokenizer"]["vocab_fingerprint"]:
        found.append("the tokenizer changed")
    return found


def run(cfg: ScoreConfig, beam_args: list[str] = (), on_start=None) -> dict:
    """Scores `cfg.inputs` into `cfg.out`, or finishes an interrupted run (`cfg.resume`);
    returns the manifest (also written as manifest.json). `on_start(cfg)` is called once
    everything that can be refused has been checked, before the job starts.

    Raises RefsiftError before any work for bad inputs, models or settings; when the job
    fails or is interrupted (saying how to resume); and after the job if its shards or
    counts do not add up.
    """
    options = runners.pipeline_options(list(beam_args))
    cfg = reading.resolve_format(cfg)
    tasks, identity = plan_tasks(
        list(cfg.inputs), format=cfg.format, text_per_line=cfg.text_per_line, task_size=cfg.task_size
    )
    reading.check_dedup(cfg, identity)
    tokenizer = check_models(cfg, options)
    roles, own = list(cfg.roles), tokenizer["own_tokens"]
    local_models = [models.local_path(spec) for spec in cfg.roles.values()]
    job = executor.ChunkJob(
        out=cfg.out,
        tasks=tasks,
        identity=identity,
        settings={k: v for k, v in asdict(cfg).items() if k not in ("model", "reference", "finetuned")},
        runtime=RUNTIME_SETTINGS,
        schemas=table_schemas(roles, own),
        views={"token_scores": catalog.token_scores_sql([r for r in roles if r not in own])},
        build=lambda pipeline, out, tasks, done: build(pipeline, cfg, out, tasks, done, own),
        record={
            "roles": {role: models.provenance(spec) for role, spec in cfg.roles.items()},
            "tokenizer": tokenizer,
            "ladder": [{"role": r, "spec": s, "score": v} for r, (s, v) in zip(cfg.ladder_roles, cfg.ladder)],
        },
        differences=model_differences,
        progress_roles=[role for role, *_ in scorers(cfg, own)],
        protect=[i["path"] for i in identity if "://" not in i["path"]]
        + [m for m in local_models if m]
        + ([cfg.dedup] if cfg.dedup else []),
        versions={**versions(), "python": platform.python_version()},
    )
    announce = (lambda out: on_start(replace(cfg, out=out))) if on_start else None
    return executor.execute(job, options, overwrite=cfg.overwrite, resume=cfg.resume, on_start=announce)
