"""ContrastiveSampler on its own: every job gets one sample, the same whatever batch or pool
it is decoded in (sample i draws from its own seed), and each token's score is
log p_ft - gamma * log p_base."""

import math

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.kernels.contrastive import DecodeSettings
from refsift.transforms.contrastive_sampler import ContrastiveSampler

SETTINGS = DecodeSettings(mode="sample", gamma=0.5, max_new_tokens=10)
JOBS = [{"sample_id": f"{mode}-{i:05d}", "mode": mode, "seed": 100 + i, "prompt": "def" if i % 2 else ""}
        for mode, n in (("cge", 5), ("baseline", 3), ("base", 2)) for i in range(n)]  # fmt: skip


def check(row: dict) -> bool:
    """Each token's score is log p_ft - gamma * log p_base; a plain sample of the fine-tuned
    model (baseline) is drawn with gamma 0, so its score is log p_ft."""
    gamma = 0.0 if row["mode"] == "baseline" else SETTINGS.gamma
    pairs = zip(row["logp_ft"], row["logp_base"], row["score"], strict=True)
    return 0 < len(row["token_ids"]) <= SETTINGS.max_new_tokens and all(
        math.isclose(score, ft - gamma * base, rel_tol=1e-5, abs_tol=1e-5) for ft, base, score in pairs
    )


def test_each_job_one_sample_whatever_its_batch(prose_model, code_model):
    with Pipeline() as p:
        jobs = p | beam.Create(JOBS)
        found = {}
        for batch_size in (1, 3):
            found[batch_size] = (
                jobs
                | f"Sample{batch_size}" >> ContrastiveSampler(base=prose_model, finetuned=code_model,
                                                              settings=SETTINGS, batch_size=batch_size, device="cpu")
                | f"Key{batch_size}" >> beam.Map(lambda r: (r["sample_id"], (tuple(r["token_ids"]), check(r))))
            )  # fmt: skip
        joined = found | beam.CoGroupByKey() | beam.Map(lambda kv: (kv[0], kv[1][1] == kv[1][3], kv[1][1][0][1]))
        assert_that(joined, equal_to([(j["sample_id"], True, True) for j in JOBS]))
