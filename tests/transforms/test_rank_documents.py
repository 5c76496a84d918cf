"""RankDocuments on its own: --by and --where evaluated per Arrow batch, inside the workers."""

import math

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.transforms.rank_documents import RankDocuments


def batches():
    rows = [
        {"doc_id": "a", "source": "code", "n_tokens": 10, "excess_loss": 0.5},
        {"doc_id": "b", "source": "code", "n_tokens": 20, "excess_loss": -1.0},
        {"doc_id": "c", "source": "prose", "n_tokens": 30, "excess_loss": None},
    ]
    return [
        pa.Table.from_pylist(rows[:2]),
        pa.Table.from_pylist(rows[2:], schema=pa.Table.from_pylist(rows[:2]).schema),
    ]


def ranked(p, **rule):
    out = p | beam.Create(batches()) | RankDocuments(**rule)
    return out | beam.Map(lambda r: (r["doc_id"], r["source"], r["n_tokens"], r["score"], r["keep"]))


def test_by_scores_and_where_marks_candidates():
    with Pipeline() as p:
        out = ranked(p, by="excess_loss * 2", where="n_tokens >= 20")
        assert_that(
            out,
            equal_to(
                [("a", "code", 10, 1.0, False), ("b", "code", 20, -2.0, True), ("c", "prose", 30, -math.inf, True)]
            ),
        )  # fmt: skip  (NULL ranks last)


def test_ascending_order_negates_the_score_and_no_by_ranks_all_alike():
    with Pipeline() as p:
        out = ranked(p, by="excess_loss", order="asc")
        assert_that(
            out,
            equal_to(
                [("a", "code", 10, -0.5, True), ("b", "code", 20, 1.0, True), ("c", "prose", 30, -math.inf, True)]
            ),
        )  # fmt: skip  (NULL ranks last)
    with Pipeline() as p:
        out = ranked(p)
        assert_that(out, equal_to([("a", "code", 10, 0.0, True), ("b", "code", 20, 0.0, True),
                                   ("c", "prose", 30, 0.0, True)]))  # fmt: skip
