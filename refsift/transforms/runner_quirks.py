"""What Beam's DaskRunner does differently, in one place, for the two transforms that must
know: it drops what a DoFn outputs from `finish_bundle` (`WriteShards` groups its rows by
key there, so every file is written from `process`), and gives a CombineFn no side inputs
(`FillBudget` groups each group's candidates whole there). Elsewhere those transforms take
the cheaper path: on the DirectRunner a GroupByKey holds all it groups in memory, and on
Dataflow a file named only by a bundle's output survives the bundle's retries."""

from __future__ import annotations


def on_dask(options) -> bool:
    """Whether `options` (a pipeline's `PipelineOptions`) run on Beam's DaskRunner."""
    from apache_beam.options.pipeline_options import StandardOptions

    return "dask" in str(options.view_as(StandardOptions).runner or "").lower()
