"""refsift/config.py: every command's options come from its config dataclass, so the command
line and the Python API cannot disagree on a default, a choice or a help text."""

from __future__ import annotations

import dataclasses

import pytest

from refsift import config
from refsift.cli import parser
from refsift.cli.common import from_args
from refsift.errors import RefsiftError
from refsift.kernels.classifier import FastTextSettings
from refsift.kernels.contrastive import DecodeSettings

# command -> (config class, the fewest arguments it takes, the same as config values)
MINIMAL = {
    "score": (config.ScoreConfig, ["--input", "a.jsonl", "--out", "r"], {"inputs": ("a.jsonl",), "out": "r"}),
    "classify": (
        config.ClassifyConfig,
        ["--input", "a.jsonl", "--out", "r", "--classifier", "c"],
        {"inputs": ("a.jsonl",), "out": "r", "classifier": "c"},
    ),
    "dedup": (config.DedupConfig, ["--input", "a.jsonl", "--out", "d"], {"inputs": ("a.jsonl",), "out": "d"}),
    "select": (config.SelectConfig, ["run", "--out", "m"], {"run": "run", "out": "m"}),
    "distill": (config.DistillConfig, ["run", "--out", "c", "--by", "x"], {"run": "run", "out": "c", "by": "x"}),
    "attribute": (
        config.AttributeConfig,
        ["--model", "m", "--target", "t.jsonl", "--sources", "s.jsonl", "--out", "o"],
        {"model": "m", "targets": ("t.jsonl",), "sources": ("s.jsonl",), "out": "o"},
    ),
    "novelty": (
        config.NoveltyConfig,
        ["--base", "b", "--finetuned", "f", "--out", "o"],
        {"base": "b", "finetuned": "f", "out": "o"},
    ),
    "ablate": (
        config.AblateConfig,
        ["--arm", "a=natural", "--arm", "b=uniform", "--eval", "e.jsonl", "--out", "o"],
        {"arms": ("a=natural", "b=uniform"), "evals": ("e.jsonl",), "out": "o"},
    ),
    "mix": (
        config.MixConfig,
        ["--input", "a.jsonl", "--target", "t.jsonl", "--tokenizer", "tok", "--out", "m"],
        {"inputs": ("a.jsonl",), "targets": ("t.jsonl",), "tokenizer": "tok", "out": "m"},
    ),
    "finetune": (
        config.FinetuneConfig,
        ["--data", "m", "--model", "x", "--out", "o"],
        {"data": ("m",), "model": "x", "out": "o"},
    ),
}


def option_fields(cls):
    """(field, its class) of every field that is an option, nested settings included."""
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory):
            yield from option_fields(f.default_factory)
        elif "help" in f.metadata:
            yield f, cls


@pytest.mark.parametrize("command", MINIMAL)
def test_the_command_line_defaults_are_the_configs(command):
    cls, argv, values = MINIMAL[command]
    args = parser().parse_args([command, *argv])
    assert from_args(cls, args) == cls(**values)


@pytest.mark.parametrize("command", MINIMAL)
def test_every_config_field_with_help_is_an_option_with_that_help(command):
    cls = MINIMAL[command][0]
    sub = parser()._subparsers._group_actions[0].choices[command]
    actions = {a.dest: a for a in sub._actions}
    for f, _ in option_fields(cls):
        if command == "dedup" and f.name == "dedup":
            continue  # a dedup run does not read one
        assert f.name in actions, f"{command}: {f.name} has help but no option"
        assert f.metadata["help"] in actions[f.name].help
        if f.metadata.get("choices"):
            assert tuple(actions[f.name].choices) == tuple(f.metadata["choices"])


def test_a_changed_default_reaches_the_command_line(monkeypatch):
    """The option's default is read from the field when the parser is built: no copy to drift."""
    fields = {f.name: f for f in dataclasses.fields(config.SelectConfig)}
    monkeypatch.setattr(fields["ratio"], "default", 0.25)
    args = parser().parse_args(["select", "run", "--out", "m"])
    assert args.ratio == 0.25


def test_sizes_are_shown_as_written_and_parsed_to_bytes():
    args = parser().parse_args(["score", "--input", "a", "--out", "r", "--task-size", "2M"])
    assert args.task_size == 2 * 2**20 and args.chunk_size == config.DEFAULT_CHUNK_SIZE
    assert args.max_record_bytes == config.DEFAULT_MAX_RECORD_BYTES
    sub = parser()._subparsers._group_actions[0].choices["score"]
    assert "(default 64M)" in " ".join(sub.format_help().split())


def test_nested_settings_are_filled_from_their_own_options():
    args = parser().parse_args(["novelty", *MINIMAL["novelty"][1], "--decoding", "greedy", "--no-stop-at-eos"])
    cfg = from_args(config.NoveltyConfig, args)
    assert cfg.decode.mode == "greedy" and cfg.decode.stop_at_eos is False
    args = parser().parse_args(["distill", *MINIMAL["distill"][1], "--bucket", "1000", "--seed", "7"])
    cfg = from_args(config.DistillConfig, args)
    assert cfg.fasttext.bucket == 1000 and cfg.fasttext.seed == 7 and cfg.seed == 7


def test_a_value_the_settings_refuse_is_one_line():
    args = parser().parse_args(["novelty", *MINIMAL["novelty"][1], "--top-p", "0"])
    with pytest.raises(RefsiftError, match="--top-p must be in"):
        from_args(config.NoveltyConfig, args)


def test_every_number_option_has_a_range():
    """NaN, infinity, a whole number C code would overflow on, a negative count: every
    number option of every command refuses them, as argparse reports a bad value or, for
    the fastText and decoding settings, as those settings' own checks do."""
    import argparse
    import dataclasses

    from refsift import cli

    nested = {f.name: cls for cls in (FastTextSettings, DecodeSettings) for f in dataclasses.fields(cls)}
    commands = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    checked = 0
    for subcommand in commands.values():
        for action in subcommand._actions:
            kind = getattr(action.type, "__name__", None)
            if kind not in ("int", "float"):
                continue
            bad = ["nan", "inf", "-inf", "1e400"] + (["-1", str(2**31)] if kind == "int" else [])
            for value in bad:
                with pytest.raises((argparse.ArgumentTypeError, ValueError, RefsiftError)):
                    parsed = action.type(value)
                    if action.dest in nested:  # parsed as a number: the settings refuse it
                        nested[action.dest](**{action.dest: parsed})
            if action.default is not None and action.dest not in nested:  # the default is in range
                action.type(str(action.default))
            checked += 1
    assert checked >= 60


def test_a_number_out_of_range_is_one_line_before_any_work(tmp_path, capsys):
    from refsift import cli

    assert cli.main(["dedup", "--input", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "d"), "--bands", "0"]) == 2
    assert "argument --bands: must be at least 1, not 0" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
