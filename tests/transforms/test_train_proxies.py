"""TrainProxies on its own: each (arm, seed) job trains one proxy on its rows and measures it
on the held-out documents; the same rows and seed give the same proxy (what differs between
arms is their data), and a committed job is not trained again."""

import math
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift import models
from refsift.demo import corpora
from refsift.transforms.train_proxies import ProxySettings, TrainProxies, done_path, eval_path, job_path, results

BLOCK, BATCH = 32, 4


def setup(out, tokenizer_dir: str) -> list[dict]:
    """Jobs: `prose` and `same` read the same prose rows, `code` code rows; all seed 0."""
    tokenizer = models.load_tokenizer(tokenizer_dir)
    blocks = {}
    for domain in ("prose", "code"):
        ids = [t for text in corpora.documents(domain)[:6] for t in tokenizer(text)["input_ids"]]
        blocks[domain] = [ids[i : i + BLOCK] for i in range(0, 10 * BLOCK, BLOCK)]
    jobs = []
    for arm, domain in (("prose", "prose"), ("same", "prose"), ("code", "code")):
        os.makedirs(os.path.dirname(job_path(str(out), arm, 0)), exist_ok=True)
        pq.write_table(pa.table({"input_ids": blocks[domain], "labels": [None] * 10}), job_path(str(out), arm, 0))
        jobs.append({"arm": arm, "seed": 0, "max_epochs": 1.0})
    held_out = [{"doc_id": f"{domain}{i}", "text": text[:300], "prompt": None, "messages": None, "source": domain,
                 "eval": "heldout"} for domain in ("prose", "code")
                for i, text in enumerate(corpora.documents(domain)[50:53])]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(held_out), eval_path(str(out)))
    return jobs


def train(out, tokenizer_dir: str, jobs: list[dict]) -> None:
    settings = ProxySettings(proxy="1x32", tokenizer=tokenizer_dir, batch_size=BATCH, lr=2e-3, curve_points=2,
                             max_length=64, context=16, device="cpu")  # fmt: skip
    with Pipeline() as p:
        done = p | beam.Create(jobs) | TrainProxies(out=str(out), settings=settings)
        assert_that(done, equal_to([(job["arm"], job["seed"]) for job in jobs]))


def test_a_proxy_per_job_trained_on_its_rows_and_measured(tmp_path, prose_model):
    jobs = setup(tmp_path, prose_model)
    train(tmp_path, prose_model, jobs)
    tables = results(str(tmp_path), jobs)
    runs = {r["arm"]: r for r in tables["runs"]}
    assert set(runs) == {"prose", "same", "code"}
    assert all(r["steps"] == math.ceil(10 / BATCH) and r["tokens_fed"] == 10 * BLOCK for r in runs.values())
    losses = {}
    for row in tables["doc_losses"]:
        losses.setdefault(row["arm"], {})[row["doc_id"]] = row["nll"]
    assert all(len(docs) == 6 and all(math.isfinite(x) for x in docs.values()) for docs in losses.values())
    assert losses["prose"] == losses["same"]  # the same rows and seed: the same proxy
    assert losses["prose"] != losses["code"]
    curves = [(r["arm"], r["step"]) for r in tables["curves"]]
    assert sorted(curves) == sorted((arm, step) for arm in runs for step in (2, 3))  # 2 points along 3 steps


def test_a_committed_job_is_not_trained_again(tmp_path, prose_model):
    jobs = setup(tmp_path, prose_model)
    train(tmp_path, prose_model, jobs[:1])
    committed = os.stat(done_path(str(tmp_path), "prose", 0)).st_mtime_ns
    train(tmp_path, prose_model, jobs)
    assert os.stat(done_path(str(tmp_path), "prose", 0)).st_mtime_ns == committed
    assert {r["arm"] for r in results(str(tmp_path), jobs)["runs"]} == {"prose", "same", "code"}
