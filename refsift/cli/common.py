"""What several commands share: the common options, the options a config dataclass makes
(`add_options`), and filling a config dataclass from parsed arguments (`from_args`)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from importlib import resources

from refsift.config import INT_MAX
from refsift.errors import RefsiftError, number

COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("--verbose", action="store_true", help="show Beam's logs and Hugging Face's progress bars")


class Help(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it says it already or has none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default in (None, False, [], (), argparse.SUPPRESS):
            return text
        return f"{text} (default %(default)s)" if text else "default %(default)s"


def add_options(
    p: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (), _groups: dict | None = None, _nested: bool = False
) -> None:
    """Adds the options of a config dataclass (`refsift.config`): one per field with help in its
    metadata, its default, choices and parser from the field; a nested settings dataclass
    (`fasttext`, `decode`) adds its own fields' options."""
    groups = {} if _groups is None else _groups
    taken = {a.dest for a in p._actions}
    for f in _own_first(cls):
        meta = f.metadata
        if f.name in skip or f.name in taken or "help" not in meta:
            continue
        if dataclasses.is_dataclass(f.default_factory):  # its own checks name its ranges (FastTextSettings.LIMITS)
            add_options(p, f.default_factory, skip=skip, _groups=groups, _nested=True)
            continue
        group = meta.get("group")
        if group and group not in groups:
            groups[group] = p.add_argument_group(group)
        target = groups[group] if group else p
        help_text = meta["help"] + (f" (default {meta['shown']})" if meta.get("shown") else "")
        has_default = f.default is not dataclasses.MISSING
        default = f.default if has_default else None
        if meta.get("positional"):
            target.add_argument(
                f.name, nargs=None if not has_default else "?", metavar=meta.get("metavar"), help=help_text
            )
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        kwargs = {"dest": f.name, "help": help_text}
        if isinstance(default, bool) and not meta.get("parse"):
            kwargs["action"] = "store_false" if default else "store_true"
        else:
            parse = meta.get("parse") or _parser(f.type)
            kwargs["type"] = parse if _nested else in_range(parse, meta.get("low"), meta.get("high"))
            if meta.get("shown"):
                kwargs["help"] = meta["help"]  # the default is shown as written, not as a number of bytes
                kwargs["default"] = meta["shown"]
            else:
                kwargs["default"] = list(default) if isinstance(default, tuple) else default
            kwargs.update({k: meta[k] for k in ("choices", "metavar") if meta.get(k)})
            if meta.get("many"):
                kwargs["nargs"] = "+"
            if meta.get("repeat"):
                kwargs["action"] = "append"
            required = meta.get("required")
            kwargs["required"] = not has_default if required is None else required
        target.add_argument(flag, **kwargs)


def in_range(parse, low, high):
    """`parse` refusing, as argparse reports a bad value, a number outside [low, high]: by
    default a whole number within [0, INT_MAX] and any number finite."""
    if parse not in (int, float) and low is None and high is None:
        return parse
    both = low is not None and high is not None  # a refusal names both ends only when the option declares both
    if parse is int:
        low, high = (0 if low is None else low), (INT_MAX if high is None else high)

    def checked(text: str):
        value = parse(text) if parse else float(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if both and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {number(low)} and {number(high)}, not {text}")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {number(low)}, not {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {number(high)}, not {text}")
        return value

    checked.__name__ = getattr(parse, "__name__", "number")  # argparse names it in "invalid int value"
    return checked


def _own_first(cls) -> list[dataclasses.Field]:
    """The fields of `cls`, its own first, then those of its bases in method resolution order."""

    def defined_in(f):
        return next(i for i, c in enumerate(cls.__mro__) if f.name in c.__dict__.get("__annotations__", {}))

    return sorted(dataclasses.fields(cls), key=defined_in)


def _parser(annotation: str):
    """int or float for a field annotated so (optional or not; one value of a tuple), else text."""
    kind = annotation.replace(" ", "").removesuffix("|None").removeprefix("tuple[").removesuffix(",...]")
    return {"int": int, "float": float}.get(kind)


def from_args(cls, args: argparse.Namespace, **values):
    """A config dataclass filled from the parsed arguments of the same names (lists as
    tuples; nested settings from their own fields), then `values`. A value a settings
    dataclass refuses is one line, as the config's own refusals are."""
    filled = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            continue
        if dataclasses.is_dataclass(f.default_factory):
            filled[f.name] = from_args(f.default_factory, args)
        elif hasattr(args, f.name) and getattr(args, f.name) is not None or f.default is None:
            value = getattr(args, f.name, None)
            filled[f.name] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**filled, **values)
    except ValueError as err:
        raise RefsiftError(str(err)) from None


def sample_inputs() -> list[str]:
    """The bundled sample corpus scored when `refsift score` gets no --input."""
    return [str(resources.files("refsift") / "data" / "sample" / "*.jsonl.gz")]


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
