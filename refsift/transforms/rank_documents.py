"""`RankDocuments`: examples shards -> one candidate per document, scored by a SQL expression.

`--by` and `--where` are DuckDB SQL over the columns of the `examples` view. They are
evaluated inside the workers, one Arrow record batch at a time, so the same expression
works locally and on Dataflow and no worker holds more than a batch.
"""

from __future__ import annotations

import contextlib
import threading

import apache_beam as beam
from apache_beam.metrics import Metrics


def ranking_sql(by: str | None, where: str | None, order: str) -> str:
    """The per-batch query: score (higher = better) and whether the document passes `where`.
    Refuses expressions that would make it anything but one SELECT (`--by '1; DROP ...'`)."""
    from refsift.catalog import one_select
    from refsift.errors import RefsiftError

    # text DuckDB cannot parse passes here: the launcher's trial query reports it in DuckDB's words
    for option, text in (("--by", by), ("--where", where)):
        if text is not None and not one_select(f"SELECT ({text}) FROM examples", unparsable=True):
            raise RefsiftError(f"{option} must be one SQL expression over the examples' columns: {text!r} is not")
    score = "0.0" if by is None else f"({by})" if order == "desc" else f"-({by})"
    keep = "TRUE" if where is None else f"COALESCE(({where}), FALSE)"
    sql = f"SELECT doc_id, source, n_tokens, CAST({score} AS DOUBLE) AS score, {keep} AS keep FROM examples"
    if not one_select(sql, unparsable=True):
        raise RefsiftError(f"--by and --where must each be one SQL expression: {by!r}, {where!r}")
    return sql


@contextlib.contextmanager
def ranking_query(con, timeout: float | None):
    """Around a --by/--where query on the launcher: past `timeout` seconds it stops, and any
    SQL error is one line naming --by/--where."""
    from refsift.catalog import time_limit
    from refsift.errors import RefsiftError

    try:
        with time_limit(con, timeout):
            yield
    except RefsiftError:
        raise
    except Exception as err:
        raise RefsiftError(f"--by/--where: {' '.join(str(err).split())[:300]}") from None


class _RankFn(beam.DoFn):
    def __init__(self, sql: str, timeout: float | None):
        self._sql, self._timeout = sql, timeout
        self._read = Metrics.counter("RankDocuments", "documents")

    def setup(self):
        from refsift.catalog import confined

        self._con = confined()  # --by and --where are SQL: they may compute, never reach a file
        self._lock = threading.Lock()  # one DoFn may serve threads at once (Dask computes side inputs so)

    def __getstate__(self):  # a runner may pickle the DoFn after setup (Dask, for a side input)
        return {k: v for k, v in self.__dict__.items() if k not in ("_con", "_lock")}

    def process(self, batch):
        from refsift.catalog import time_limit

        with self._lock, time_limit(self._con, self._timeout):
            self._con.register("examples", batch)
            try:
                result = self._con.execute(self._sql)
                columns = [d[0] for d in result.description]
                rows = result.fetchall()
            finally:
                self._con.unregister("examples")
        for values in rows:
            row = dict(zip(columns, values))
            self._read.inc()
            if row["score"] is None or row["score"] != row["score"]:  # NULL or NaN ranks last
                row["score"] = float("-inf")
            yield row


class RankDocuments(beam.PTransform):
    """Scores documents for selection.

    Args:
      by: SQL expression over `examples` columns to rank by; None ranks all equally.
      where: SQL condition; documents failing it are kept as candidates with keep=False, so
        that counts before selection stay complete.
      order: "desc" (higher is better) or "asc".
      timeout: seconds the expressions may run over one batch (None: no limit); past it the
        job stops in one line naming --timeout.
    """

    def __init__(self, *, by: str | None = None, where: str | None = None, order: str = "desc", timeout=None):
        super().__init__()
        if order not in ("desc", "asc"):
            raise ValueError("order must be 'desc' or 'asc'")
        self._sql, self._timeout = ranking_sql(by, where, order), timeout or None

    def expand(self, batches):
        return batches | "Rank" >> beam.ParDo(_RankFn(self._sql, self._timeout))
