"""`IndexCorpus`: the first, light pass over every task: ids and row counts only.

It parses each record as the scoring pass will (so a record rejected there does not count
here) and emits, per task, the (id, row) pairs of the records that carry an id in
`ID_SHARDS` groups by a stable hash of the id, and the task's number of rows. From them come
two small side inputs of the scoring pass: the first position of every id that occurs more
than once (its later occurrences are rejected as `duplicate_id`; one shard's ids meet on
one worker), and the row number each byte-range task starts at. No document text crosses
the shuffle, only ids, a few elements per task rather than one per record: memory grows
with the number of records that carry ids, not with their size.

The scan has one output, its elements tagged by kind, split by two filters: some runners
(Beam's DaskRunner) deliver a multi-output ParDo's tagged outputs mixed with its main one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import apache_beam as beam

from refsift.corpus import records
from refsift.corpus.formats import Reading, payloads

ID_SHARDS = 16  # ids are grouped by shard: a few elements per task, not one per record


def id_shard(doc_id: str) -> int:
    """A stable shard of an id, the same in every worker process (unlike `hash`)."""
    return zlib.crc32(doc_id.encode("utf-8", "surrogatepass")) % ID_SHARDS


class _IndexFn(beam.DoFn):
    def __init__(self, fields, reading: Reading):
        self._fields, self._reading = fields, reading

    def process(self, task):
        rows = records_read = 0
        shards: dict[int, list] = {}
        for row, payload in payloads(task, self._fields.columns(), self._reading):
            rows = row + 1
            parsed = records.parse(payload, task.format, self._fields)
            if parsed is None:
                continue
            records_read += 1
            if isinstance(parsed, dict) and parsed["id"] is not None:
                shards.setdefault(id_shard(parsed["id"]), []).append((parsed["id"], row))
        for shard, ids in shards.items():
            yield "ids", (shard, ((task.input, task.start), ids))
        yield "count", (task.index, task.input, task.start, rows, records_read)


def repeated_ids(shard_and_tasks) -> Iterator[tuple[str, tuple]]:
    """(id, its first position (input, task start, row)) for every id of a shard seen more
    than once, from each task's (id, row) pairs of that shard."""
    _, tasks = shard_and_tasks
    first: dict[str, tuple] = {}
    repeated = set()
    for (path, start), ids in tasks:
        for doc_id, row in ids:
            position = (path, start, row)
            seen = first.get(doc_id)
            if seen is None:
                first[doc_id] = position
            elif seen != position:  # not the same record delivered twice (a recomputed task)
                repeated.add(doc_id)
                first[doc_id] = min(seen, position)
    for doc_id in repeated:
        yield doc_id, first[doc_id]


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
        ids = out | "Ids" >> beam.Filter(lambda kv: kv[0] == "ids") | "Id" >> beam.Map(lambda kv: kv[1])
        counts = out | "Counts" >> beam.Filter(lambda kv: kv[0] == "count") | "Count" >> beam.Map(lambda kv: kv[1])
        duplicates = ids | "ByShard" >> beam.GroupByKey() | "Repeated" >> beam.FlatMap(repeated_ids)
        counts = counts | "AllCounts" >> beam.combiners.ToList()
        return {
            "duplicates": duplicates,
            "first_rows": counts | "FirstRows" >> beam.Map(first_rows),
            "records": counts | "Records" >> beam.Map(lambda c: sum(x[4] for x in c)),
        }
