"""FillBudget on its own: the best candidates of each group within its limit."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.transforms.fill_budget import FillBudget


def candidates():
    # (score, doc_id, weight, group)
    code = [(0.9, "c1", 40, "code"), (0.8, "c2", 40, "code"), (0.7, "c3", 40, "code"), (0.1, "c4", 5, "code")]
    prose = [(0.5, "p1", 10, "prose"), (0.6, "p2", 10, "prose")]
    return [(c[3], c) for c in code + prose]


def chosen_ids(kv):
    group, chosen = kv
    return group, [c[1] for c in chosen]


def test_each_group_fills_its_own_limit_best_first():
    limits = {"code": 85, "prose": 15}
    with Pipeline() as p:
        out = p | beam.Create(candidates()) | FillBudget(limits=limits) | beam.Map(chosen_ids)
        # code: c1 + c2 = 80 fit, c3 would pass 85 (greedy stops at the first that does not fit);
        # prose: p2 (the better) fits, p1 would pass 15.
        assert_that(out, equal_to([("code", ["c1", "c2"]), ("prose", ["p2"])]))


def test_a_group_without_a_limit_gets_nothing_and_a_side_input_limit_is_read():
    with Pipeline() as p:
        limits = p | "Limits" >> beam.Create([{"code": 200}])
        out = p | beam.Create(candidates()) | FillBudget(limits=beam.pvalue.AsSingleton(limits)) | beam.Map(chosen_ids)
        assert_that(out, equal_to([("code", ["c1", "c2", "c3", "c4"]), ("prose", [])]))
