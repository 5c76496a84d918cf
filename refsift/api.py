"""The Python API: the same operations as the command line, as functions.

    import refsift
    run = refsift.score(["data/*.jsonl"], out="runs/r1", model="smollm2-135m")
    run.sql("SELECT source, avg(nll_model) FROM examples GROUP BY 1").df()
    refsift.select("runs/r1", out="mixes/m1", tokens="excess", ratio=0.6)
    refsift.finetune("mixes/m1", model="smollm2-135m", out="ckpts/c1", steps=100)
    refsift.novelty("smollm2-135m", "ckpts/c1", out="reports/n1", iterative=True)

Each function takes the options of its command as keyword arguments (see the config
dataclasses: ScoreConfig, SelectConfig, NoveltyConfig, DecodeSettings) and `beam_args`
for Beam pipeline options.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from refsift import catalog
from refsift.errors import RefsiftError
from refsift.jobs import rundir


class Run:
    """A scored run directory: its manifest, and read-only SQL over its catalog.

    `sql` returns a DuckDB relation: `.df()` for pandas, `.arrow()` for Arrow,
    `.fetchall()` for tuples. Queries run on the same confined connection as `refsift sql`
    (`refsift.catalog.connect`): one SELECT at a time, nothing outside the run reachable.
    Use it as a context manager, or call `close()`.
    """

    def __init__(self, path: str):
        rundir.require(str(path), "run")
        self.path = Path(path)
        self.manifest = json.loads((self.path / "manifest.json").read_text())
        self._con, self._seen = None, None

    @property
    def _connection(self):
        # Rebuilt whenever the catalog changed (a selection registered since).
        stamp = (self.path / catalog.CATALOG).stat().st_mtime_ns
        if stamp != self._seen:
            self.close()
            self._con, self._seen = catalog.connect(str(self.path)), stamp
        return self._con

    def sql(self, query: str):
        con = self._connection
        catalog.check_read_only(con, query)
        return con.sql(query)

    def df(self, query: str):
        return self.sql(query).df()

    def arrow(self, query: str):
        """The result as a pyarrow Table (DuckDB 2 returns a batch reader from `.arrow()`)."""
        result = self.sql(query).arrow()
        return result.read_all() if hasattr(result, "read_all") else result

    @property
    def tables(self) -> list[str]:
        views = self._connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1")
        return [name for (name,) in views.fetchall()]

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        self._con, self._seen = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        counts = self.manifest.get("counts", {})
        return f"Run({str(self.path)!r}, scored={counts.get('scored')}, roles={list(self.manifest.get('roles', {}))})"


def open_run(path: str) -> Run:
    """Opens a run directory written by `score`."""
    return Run(path)


def _config(cls, **kwargs):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"unknown option(s) for {cls.__name__}: {', '.join(unknown)}")
    return cls(**kwargs)


def score(inputs: list[str] | str, *, out: str, beam_args: list[str] = (), **options) -> Run:
    """Scores `inputs` into the run directory `out` (options as `refsift score`); returns the Run."""
    from refsift.config import ScoreConfig
    from refsift.pipelines import score as pipeline

    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    if "checkpoints" in options:
        options["checkpoints"] = tuple(tuple(c) for c in options["checkpoints"])
    pipeline.run(_config(ScoreConfig, inputs=inputs, out=out, **options), list(beam_args))
    return open_run(out)


def select(run: str | Run, *, out: str, beam_args: list[str] = (), **options) -> dict:
    """Selects from a run into the mixture directory `out`; returns selection.json's content."""
    from refsift.pipelines import select as pipeline

    run_dir = str(run.path if isinstance(run, Run) else run)
    return pipeline.run(_config(pipeline.SelectConfig, run=run_dir, out=out, **options), list(beam_args))


def finetune(data: str | list[str], *, model: str, out: str, **options) -> dict:
    """Fine-tunes `model` on one or more selection exports; returns training.json's content."""
    from refsift.config import FinetuneConfig
    from refsift.pipelines import finetune as pipeline

    return pipeline.run(FinetuneConfig(data=data, model=model, out=out, **options))


def novelty(base: str, finetuned: str, *, out: str, beam_args: list[str] = (), **options) -> dict:
    """Writes a novelty report to `out`; returns report.json's content. Decoding options
    (alpha, gamma, mode, temperature, top_k, top_p, num_beams, max_new_tokens) may be given
    directly."""
    from refsift.kernels.contrastive import DecodeSettings
    from refsift.pipelines import novelty as pipeline

    decode_names = {f.name for f in fields(DecodeSettings)}
    decode = {k: options.pop(k) for k in list(options) if k in decode_names}
    if decode:
        try:
            options["decode"] = DecodeSettings(**decode)
        except ValueError as err:
            raise RefsiftError(str(err)) from None
    cfg = _config(pipeline.NoveltyConfig, base=base, finetuned=finetuned, out=out, **options)
    return pipeline.run(cfg, list(beam_args))


def attribute(model: str, *, targets: str | list[str], sources: str | list[str], out: str, **options) -> dict:
    """Which of `sources` taught `model` what `targets` show (options as `refsift attribute`);
    returns attribution.json's content, whose `attribution` rows rank the sources."""
    from refsift.pipelines import attribute as pipeline

    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    return pipeline.run(
        _config(pipeline.AttributeConfig, model=model, targets=targets, sources=sources, out=out, **options)
    )


def report(run: str | Run, *, out: str | None = None) -> Path:
    """Writes the run's HTML report (default RUN_DIR/report.html); returns its path."""
    from refsift.pages import run as page

    return page.write(str(run.path if isinstance(run, Run) else run), out)
