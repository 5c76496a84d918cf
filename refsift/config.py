"""Configuration of a scoring run: what to read, which model plays which role, how to cut
and batch. Beam runner options are separate (`PipelineOptions`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from refsift.corpus.formats import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_RECORD_BYTES, Reading
from refsift.corpus.records import Fields
from refsift.corpus.tasks import DEFAULT_TASK_SIZE, FORMATS
from refsift.errors import RefsiftError
from refsift.kernels import scores
from refsift.kernels.encode import PREFIXES
from refsift.kernels.scores import FIXED_ROLES
from refsift.models import SMOLLM2

# Settings that change how fast a run goes, not what it computes: a resumed run may differ in them.
RUNTIME_SETTINGS = ("out", "inputs", "batch_size", "overwrite", "resume")


@dataclass(frozen=True, kw_only=True)
class CorpusOptions:
    """How a corpus is read, the same for every command that reads one (score, attribute,
    classify, dedup): formats, which fields hold what, and the limits on a record."""

    format: str = field(default="auto", metadata={"help": "input format; auto picks by file suffix"})
    text_field: str = field(default="text", metadata={"help": "record field holding the text (the response)"})
    id_field: str | None = field(default=None, metadata={"help": "id field; default `id` if present, else a hash"})
    source_field: str | None = field(default=None, metadata={"help": "domain field; default the file stem"})
    prompt_field: str | None = field(default=None, metadata={"help": "instruction data: field holding the prompt"})
    messages_field: str | None = field(default=None, metadata={"help": "chat data: field holding the messages"})
    text_per_line: bool = field(default=False, metadata={"help": "format text: one document per line"})
    hf_split: str = field(default="train", metadata={"help": "split of a Hugging Face dataset"})
    max_record_bytes: int = field(
        default=DEFAULT_MAX_RECORD_BYTES, metadata={"help": "a larger record is rejected as too_large"}
    )
    dedup: str | None = field(
        default=None, metadata={"help": "a refsift dedup directory: the copies it did not keep are skipped"}
    )

    def __post_init__(self):
        if self.format not in FORMATS:
            raise RefsiftError(f"--format must be one of {', '.join(FORMATS)}")
        if self.max_record_bytes < 1:
            raise RefsiftError("--max-record-bytes must be positive")
        if self.prompt_field and self.messages_field:
            raise RefsiftError("give --prompt-field or --messages-field, not both")

    @property
    def reading(self) -> Reading:
        return Reading(self.text_per_line, self.hf_split, self.max_record_bytes)

    @property
    def fields(self) -> Fields:
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

    task_size: int = field(default=DEFAULT_TASK_SIZE, metadata={"help": "bytes of input per task (a worker's unit)"})
    chunk_size: int = field(default=DEFAULT_CHUNK_SIZE, metadata={"help": "bytes of input per chunk (committed whole)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing run directory's contents"})
    resume: bool = field(default=False, metadata={"help": "finish an interrupted run: do only what is missing"})

    def __post_init__(self):
        if not getattr(self, "inputs", True):
            raise RefsiftError("no --input given")
        super().__post_init__()
        if self.task_size < 1 or self.chunk_size < 1:
            raise RefsiftError("--task-size and --chunk-size must be positive")
        if self.overwrite and self.resume:
            raise RefsiftError("give --overwrite or --resume, not both")


WINDOWINGS = ("context", "rolling")


def check_windows(max_length: int, context: int, windows: str) -> None:
    if windows not in WINDOWINGS:
        raise RefsiftError(f"--windows must be one of {', '.join(WINDOWINGS)}")
    if max_length < 2 or (windows == "context" and not 1 <= context < max_length):
        raise RefsiftError("need --max-length >= 2 and 1 <= --context < --max-length")


def window_context(context: int, windows: str) -> int | None:
    """The `context` argument of `refsift.kernels.windows.cut`: None for rolling windows."""
    return None if windows == "rolling" else context


@dataclass(frozen=True, kw_only=True)
class ScoreConfig(ChunkJobOptions):
    inputs: tuple[str, ...] = field(metadata={"help": "file patterns, or dataset paths/names for format hf"})
    out: str = field(metadata={"help": "run directory to write (local or gs://)"})
    model: str | None = field(
        default=None, metadata={"help": "the model you intend to train (theta); default the ladder's first, or SmolLM2"}
    )
    reference: str | None = field(default=None, metadata={"help": "reference / irreducible-loss model"})
    finetuned: str | None = field(default=None, metadata={"help": "theta after fine-tuning on the data"})
    checkpoints: tuple[tuple[str, str], ...] = field(
        default=(), metadata={"help": "(name, model) intermediate checkpoints of theta, in training order"}
    )
    ladder: tuple[tuple[str, float], ...] = field(
        default=(), metadata={"help": "(model, benchmark score) of a ladder of models, for predictive strength"}
    )
    prefix: str = field(
        default="auto", metadata={"help": "token before each document: auto (BOS, else EOS), bos, eos, none"}
    )
    max_length: int = field(default=512, metadata={"help": "tokens per window, context included"})
    context: int = field(default=64, metadata={"help": "tokens of left context repeated between windows"})
    windows: str = field(default="context", metadata={"help": "context (re-fed left context) or rolling (lm-eval's)"})
    batch_size: int = field(default=8, metadata={"help": "windows of max_length tokens per forward pass"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:1, ..."})
    dtype: str = field(default="auto", metadata={"help": "auto (fp32 CPU, bf16 CUDA), float32, bfloat16, float16"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow models' own code from the hub"})

    def __post_init__(self):
        super().__post_init__()
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
        if self.prefix not in PREFIXES:
            raise RefsiftError(f"--prefix must be one of {', '.join(PREFIXES)}")
        check_windows(self.max_length, self.context, self.windows)
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
