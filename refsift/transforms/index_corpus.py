"""`IndexCorpus`: the first, light pass over every task: ids and row counts only.

It parses each record as the scoring pass will (so a record rejected there does not count
here) and emits (id, position) for the records that carry an id, and each task's number of
rows. From them come two small side inputs of the scoring pass: the first position of every
id that occurs more than once (its later occurrences are rejected as `duplicate_id`), and
the row number each byte-range task starts at. No document text crosses the shuffle, only
ids: memory grows with the number of records that carry ids, not with their size.

The scan has one output, its elements tagged by kind, split by two filters: some runners
(Beam's DaskRunner) deliver a multi-output ParDo's tagged outputs mixed with its main one.
"""

from __future__ import annotations

import apache_beam as beam

from refsift.corpus import records
from refsift.corpus.formats import Reading, payloads


class _IndexFn(beam.DoFn):
    def __init__(self, fields, reading: Reading):
        self._fields, self._reading = fields, reading

    def process(self, task):
        rows = records_read = 0
        for row, payload in payloads(task, self._fields.columns(), self._reading):
            rows = row + 1
            parsed = records.parse(payload, task.format, self._fields)
            if parsed is None:
                continue
            records_read += 1
            if isinstance(parsed, dict) and parsed["id"] is not None:
                yield "id", (parsed["id"], (task.input, task.start, row))
        yield "count", (task.index, task.input, task.start, rows, records_read)


class _FirstAndCount(beam.CombineFn):
    def create_accumulator(self):
        return None, 0

    def add_input(self, acc, position):
        return (position if acc[0] is None else min(acc[0], position)), acc[1] + 1

    def merge_accumulators(self, accs):
        firsts = [a[0] for a in accs if a[0] is not None]
        return (min(firsts) if firsts else None), sum(a[1] for a in accs)

    def extract_output(self, acc):
        return acc


def first_rows(counts: list[tuple]) -> dict[int, int]:
    """Task index -> row number of its first record in its file (rows of the tasks before it).
    A task counted twice (a runner that recomputes a side input may deliver it so) counts once."""
    out, rows_before = {}, {}
    for index, path, _, rows, _ in sorted(set(map(tuple, counts)), key=lambda c: (c[1], c[2])):
        out[index] = rows_before.get(path, 0)
        rows_before[path] = out[index] + rows
    return out


class IndexCorpus(beam.PTransform):
    """Tasks -> {"duplicates": (id, first position) for ids seen more than once,
    "first_rows": one dict task index -> first row, "records": total records}.

    Args:
      fields: the record fields (`refsift.corpus.records.Fields`).
      reading: how records are read (`refsift.corpus.formats.Reading`).
    """

    def __init__(self, *, fields, reading: Reading = Reading()):
        super().__init__()
        self._fn = _IndexFn(fields, reading)

    def expand(self, tasks):
        out = tasks | "Scan" >> beam.ParDo(self._fn)
        ids = out | "Ids" >> beam.Filter(lambda kv: kv[0] == "id") | "Id" >> beam.Map(lambda kv: kv[1])
        counts = out | "Counts" >> beam.Filter(lambda kv: kv[0] == "count") | "Count" >> beam.Map(lambda kv: kv[1])
        duplicates = (
            ids
            | "FirstAndCount" >> beam.CombinePerKey(_FirstAndCount())
            | "Repeated" >> beam.Filter(lambda kv: kv[1][1] > 1)
            | "FirstPosition" >> beam.Map(lambda kv: (kv[0], kv[1][0]))
        )
        counts = counts | "AllCounts" >> beam.combiners.ToList()
        return {
            "duplicates": duplicates,
            "first_rows": counts | "FirstRows" >> beam.Map(first_rows),
            "records": counts | "Records" >> beam.Map(lambda c: sum(x[4] for x in c)),
        }
