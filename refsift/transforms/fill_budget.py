"""`FillBudget`: the best documents of each group (a source, or one group for all) within
that group's limit.

A CombineFn whose accumulator is pruned to what could still be chosen (documents in score
order until the limit is passed), so memory follows the selection, not the corpus. Beam's
DaskRunner gives a CombineFn no side inputs (it outputs nothing); there each group's
candidates are grouped whole and filled in one step instead (memory: every candidate's
score and id, never its text).
"""

from __future__ import annotations

import apache_beam as beam

from refsift.kernels.selection import fill
from refsift.transforms.runner_quirks import on_dask

_PRUNE_EVERY = 4096


class _FillFn(beam.CombineFn):
    """Elements are (score, doc_id, weight, group, ...); `limits` maps group -> weight limit
    (a group without one, such as a source left out of a mixture, gets nothing)."""

    def create_accumulator(self, limits):
        return []

    def add_input(self, acc, element, limits):
        acc.append(element)
        return _prune(acc, limits) if len(acc) >= _PRUNE_EVERY else acc

    def merge_accumulators(self, accs, limits):
        return _prune([e for acc in accs for e in acc], limits)

    def extract_output(self, acc, limits):
        return fill(acc, limits.get(acc[0][3], 0)) if acc else []


def _prune(acc: list[tuple], limits: dict) -> list[tuple]:
    if not acc:
        return acc
    chosen = fill(acc, limits.get(acc[0][3], 0))
    # fill() stops at the first document that does not fit: keep it too, so that a merge
    # with other partial results ranks the same way.
    return sorted(acc, key=lambda c: (-c[0], c[1]))[: len(chosen) + 1]


class FillBudget(beam.PTransform):
    """(group, (score, doc_id, weight, group)) -> (group, chosen candidates, best first).

    Args:
      limits: a dict group -> weight limit, or a side input (`beam.pvalue.AsSingleton`) of one.
    """

    def __init__(self, *, limits):
        super().__init__()
        self._limits = limits

    def expand(self, keyed):
        if on_dask(keyed.pipeline.options):
            return (
                keyed
                | "Group" >> beam.GroupByKey()
                | "Fill" >> beam.Map(lambda kv, limits: (kv[0], fill(list(kv[1]), limits.get(kv[0], 0))), self._limits)
            )
        return keyed | "Fill" >> beam.CombinePerKey(_FillFn(), self._limits)
