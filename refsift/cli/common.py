"""What several commands share: the common options, the corpus-reading options, argument
types, and filling a config dataclass from parsed arguments."""

from __future__ import annotations

import argparse
import dataclasses
from importlib import resources

COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("--verbose", action="store_true", help="show Beam's logs and Hugging Face's progress bars")


class Help(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it says it already or has none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default in (None, False, [], (), argparse.SUPPRESS):
            return text
        return f"{text} (default %(default)s)" if text else "default %(default)s"


def from_args(cls, args: argparse.Namespace, **values):
    """A config dataclass filled from the parsed arguments of the same names, then `values`."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(args).items() if k in known}, **values})


def sample_inputs() -> list[str]:
    """The bundled sample corpus scored when `refsift score` gets no --input."""
    return [str(resources.files("refsift") / "data" / "sample" / "*.jsonl.gz")]


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


def add_corpus_options(p, *, dedup: bool = True) -> None:
    """How inputs are read (`refsift.config.CorpusOptions`): the same for every command that reads a corpus."""
    g = p.add_argument_group("reading inputs")
    g.add_argument(
        "--format",
        default="auto",
        choices=["auto", "jsonl", "parquet", "text", "hf"],
        help="auto: by file suffix (.jsonl/.json/.ndjson, .parquet, .txt/.md; a saved dataset directory is hf)",
    )
    g.add_argument("--text-field", default="text", help="the text to score (with --prompt-field, the response)")
    g.add_argument(
        "--prompt-field",
        help="instruction data: the prompt, read as context; the response and an EOS are scored, the tokens TRL's "
        "SFTTrainer trains on",
    )
    g.add_argument(
        "--messages-field",
        help="chat data: [{role, content}, ...] rendered with the tokenizer's chat template; only assistant turns "
        "are scored, as TRL trains prompt-completion records of them",
    )
    g.add_argument("--id-field", help="default: `id` when a record has one, else a hash of path and row")
    g.add_argument("--source-field", help="domain label field; default: the input file's stem")
    g.add_argument("--text-per-line", action="store_true", help="with --format text: one document per line")
    g.add_argument("--hf-split", default="train", help="split of a Hugging Face dataset")
    g.add_argument(
        "--max-record-bytes",
        type=size,
        default="64M",
        help="a larger record is rejected as too_large, read through without being held in memory",
    )
    if dedup:
        g.add_argument(
            "--dedup",
            metavar="DIR",
            help="a refsift dedup run over these inputs: the copies it did not keep are skipped before any work, as "
            "near_duplicate rejections naming the kept document",
        )


def add_window_options(p) -> None:
    """How documents are cut into model windows: the same for `score` and `attribute`."""
    g = p.add_argument_group("windows")
    g.add_argument(
        "--prefix",
        default="auto",
        choices=["auto", "bos", "eos", "none"],
        help="token put before each plain document: auto = BOS, else EOS (as lm-evaluation-harness); with a prefix "
        "every token of a document is scored, with none its first token is not; instruction and chat data get none, "
        "as TRL trains them (default %(default)s)",
    )
    g.add_argument("--max-length", type=int, default=512, help="tokens per window (default %(default)s)")
    g.add_argument("--context", type=int, default=64, help="left-context tokens between windows (default %(default)s)")
    g.add_argument(
        "--windows",
        default="context",
        choices=["context", "rolling"],
        help="how a document longer than --max-length is cut: context = each window re-reads --context tokens of "
        "the one before, so every token has context (for selection and novelty); rolling = lm-evaluation-harness's "
        "disjoint loglikelihood_rolling windows, to reproduce its totals and perplexities (default %(default)s)",
    )


def print_counts(out: str, manifest: dict, done_as: str) -> dict:
    """A chunk job's conservation line (read = done + rejected, with the reasons); its counts."""
    c = manifest["counts"]
    if manifest.get("already_complete"):
        print(f"{out} is already complete: nothing to resume")
    reasons = ", ".join(f"{k} {v}" for k, v in c["rejected_by_reason"].items()) or "none"
    print(f"documents: read {c['read']} = {done_as} {c['scored']} + rejected {c['rejected']} ({reasons})")
    return c


def seconds(manifest: dict) -> str:
    """How long the job took: this attempt, and all attempts when it was resumed (the
    manifest's wall_time_s adds them up)."""
    total = manifest["wall_time_s"]
    attempt = manifest.get("attempt_wall_time_s", total)
    attempts = manifest.get("resumed", 0) + 1
    if attempts == 1 or manifest.get("already_complete"):
        return f"{total:.1f} s"
    return f"{attempt:.1f} s (this attempt; {total:.1f} s over {attempts} attempts)"


def add_chunk_job_options(p, what: str) -> None:
    """A chunk job's units of work and directory rules: the same for score, classify, dedup."""
    p.add_argument(
        "--task-size", type=size, default="64M", help="input bytes per task, the unit a worker takes (default 64M)"
    )
    p.add_argument(
        "--chunk-size",
        type=size,
        default="1M",
        help="input bytes per chunk, done and committed whole: the most a killed run loses (default 1M)",
    )
    p.add_argument("--overwrite", action="store_true", help=f"replace a {what} directory refsift made before")
    p.add_argument("--resume", action="store_true", help=f"finish an interrupted {what}: do only what is missing")


def add_device_options(p, *, dtype: bool = True) -> None:
    """Where models run, and whether their own code may run: the same for every command that loads one."""
    p.add_argument("--device", default="auto", help="auto (cuda when present, else cpu), cpu, cuda, cuda:1, mps")
    if dtype:
        p.add_argument(
            "--dtype",
            default="auto",
            choices=["auto", "float32", "bfloat16", "float16"],
            help="auto: float32 on a CPU, bfloat16 on CUDA",
        )
    p.add_argument(
        "--trust-remote-code", action="store_true", help="allow a model that ships its own code to run it (hub models)"
    )


def size(text: str) -> int:
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
