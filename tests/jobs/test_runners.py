"""Beyond one machine: the same run on a real cluster engine (Beam's DaskRunner on a
`distributed` LocalCluster of worker processes), on the portable runner with a separate
worker pool (every DoFn and side input pickled across a process boundary, as on Dataflow
Runner v2), and Dataflow's job built offline (`--dry_run`); the worker image's pins."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from refsift import catalog, cli
from refsift.demo import corpora
from tests.conftest import held_out, snapshot, write_jsonl

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three files, one large enough to be cut into byte-range tasks, with bad records."""
    d = tmp_path_factory.mktemp("engines")
    docs = corpora.numbered(held_out("prose", 30, start=120), "p")
    lines = [json.dumps(r) for r in docs]
    lines[5:5] = ['{"id": "bad", "text": ', "[1, 2]"]
    (d / "big.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_jsonl(d / "code.jsonl.gz", corpora.numbered(held_out("code", 8, start=120), "c"))
    write_jsonl(d / "drama.jsonl", corpora.numbered(held_out("drama", 6, start=120), "d"))
    return d


def score_args(corpus, out, model, *extra):
    return ["score", "--input", f"{corpus}/*", "--model", model, "--out", str(out), "--max-length", "64",
            "--context", "16", "--chunk-size", "4K", "--task-size", "12K", *extra]  # fmt: skip


def same(a: dict, b: dict) -> None:
    """Equal documents, rows, ids, tokens and rejections; losses equal up to float rounding."""
    assert a["rejected"] == b["rejected"]
    assert [r[:-1] for r in a["examples"]] == [r[:-1] for r in b["examples"]]
    assert [r[-1] for r in a["examples"]] == pytest.approx([r[-1] for r in b["examples"]], rel=1e-5)
    assert [r[:3] for r in a["tokens"]] == [r[:3] for r in b["tokens"]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus, prose_model):
    out = tmp_path_factory.mktemp("direct") / "run"
    assert cli.main(score_args(corpus, out, prose_model)) == 0
    assert len(json.loads((out / "_plan.json").read_text())["tasks"]) > 3  # the big file is several tasks
    return out


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    yield cluster
    cluster.close()


def on_dask(cluster) -> list[str]:
    return ["--runner", "dask", "--dask-address", cluster.scheduler_address]


def test_score_on_dask_equals_the_direct_runner_and_resumes(dask_cluster, corpus, prose_model, reference, tmp_path):
    out = tmp_path / "run"
    assert cli.main([*score_args(corpus, out, prose_model), *on_dask(dask_cluster)]) == 0
    same(snapshot(out), snapshot(reference))
    assert (
        json.loads((out / "manifest.json").read_text())["counts"]
        == json.loads((reference / "manifest.json").read_text())["counts"]
    )
    # a run killed halfway: half its chunks gone, marked incomplete; --resume on Dask finishes it
    half = tmp_path / "half"
    shutil.copytree(reference, half, ignore=shutil.ignore_patterns(".lock"))
    markers = sorted((half / "_chunks").glob("*.json"))
    for marker in markers[::2]:
        for table, name in json.loads(marker.read_text())["files"].items():
            (half / table / name).unlink()
        marker.unlink()
    (half / ".refsift").write_text(json.dumps({"kind": "run", "status": "running"}))
    assert cli.main([*score_args(corpus, half, prose_model), "--resume", *on_dask(dask_cluster)]) == 0
    same(snapshot(half), snapshot(reference))


def test_select_classify_and_dedup_on_dask_equal_the_direct_runner(
    dask_cluster, corpus, reference, tmp_path, monkeypatch
):
    from refsift.jobs import runners

    def export(mix: Path) -> list:
        import pyarrow.parquet as pq

        table = pq.read_table(sorted(mix.glob("data/*.parquet")))
        return sorted(zip(*(table.column(c).to_pylist() for c in ("doc_id", "window", "labels"))))

    argv = ["select", str(reference), "--by", "nll_model", "--budget", "50%", "--dedup", "near"]
    assert cli.main([*argv, "--out", str(tmp_path / "mix-direct")]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "mix-dask"), *on_dask(dask_cluster)]) == 0
    assert export(tmp_path / "mix-dask") == export(tmp_path / "mix-direct") != []
    stats = [
        json.loads((tmp_path / m / "selection.json").read_text())["per_source"] for m in ("mix-direct", "mix-dask")
    ]
    assert stats[0] == stats[1]
    # dedup and classify: one DirectRunner process, Dask, and the default with a process per core (however
    # small the corpus: on a machine of one core, one process)
    monkeypatch.setattr(runners, "BYTES_PER_WORKER", 1)
    one = ["--direct_num_workers=1"]
    drama = [json.loads(line) for line in (corpus / "drama.jsonl").read_text().splitlines()]
    write_jsonl(
        tmp_path / "copies.jsonl",
        [{"id": f"copy{i}", "text": d["text"] + " (copied)"} for i, d in enumerate(drama[:3])],
    )

    def on_every_runner(argv: list[str], name: str, query: str) -> list:
        """What `query` finds in the runs of `argv` in one process, on Dask and by default."""
        found = []
        for runner, extra in (("direct", one), ("dask", on_dask(dask_cluster)), ("default", [])):
            out = tmp_path / f"{name}-{runner}"
            assert cli.main([*argv, "--out", str(out), *extra]) == 0
            found.append(catalog.query(str(out), query)[1])
        return found

    dedup = ["dedup", "--input", f"{corpus}/*", str(tmp_path / "copies.jsonl"), "--task-size", "12K"]
    found = on_every_runner(dedup, "dd", "SELECT doc_id, cluster_id, kept FROM duplicates ORDER BY doc_id")
    assert found[0] == found[1] == found[2] != []
    clf = tmp_path / "clf"
    assert cli.main(["distill", str(reference), "--by", "nll_model", "--bucket", "5000", "--out", str(clf)]) == 0
    classify = ["classify", "--classifier", str(clf), "--input", f"{corpus}/*", "--task-size", "12K"]
    found = on_every_runner(classify, "c", "SELECT doc_id, row, classifier_score FROM examples ORDER BY doc_id")
    assert found[0] == found[1] == found[2] != []


def test_work_that_holds_one_core_runs_a_direct_runner_process_per_core(monkeypatch):
    from refsift.jobs import runners

    def chosen(args: list[str], tasks: int, cores: int, megabytes: int = 1000) -> dict:
        monkeypatch.setattr(runners, "cores", lambda: cores)
        options = runners.per_core(runners.pipeline_options(args), tasks, megabytes * 2**20)
        return {k: v for k, v in options.get_all_options(drop_default=True).items() if k.startswith("direct_")}

    assert chosen([], tasks=4, cores=2) == {"direct_running_mode": "multi_processing", "direct_num_workers": 2}
    assert chosen([], tasks=3, cores=8)["direct_num_workers"] == 3  # no more workers than tasks
    assert chosen([], tasks=8, cores=8, megabytes=200)["direct_num_workers"] == 3  # nor than 64 MB pieces
    assert chosen([], tasks=4, cores=2, megabytes=100) == {}  # too little input to be worth a second process
    assert chosen([], tasks=1, cores=8) == {}
    assert chosen([], tasks=4, cores=1) == {}
    assert chosen(["--direct_num_workers=1"], tasks=4, cores=2) == {}  # what the user says stands
    assert chosen(["--direct_running_mode=multi_threading"], tasks=4, cores=2) == {
        "direct_running_mode": "multi_threading"
    }
    assert chosen(["--runner", "portable"], tasks=4, cores=2) == {}


def test_workers_sharing_a_machine_share_its_cores_between_their_torch_threads(monkeypatch):
    from refsift.jobs import runners

    def threads(args: list[str], cores: int) -> int | None:
        monkeypatch.setattr(runners, "cores", lambda: cores)
        return runners.threads_per_worker(runners.pipeline_options(args))

    multi = ["--direct_running_mode=multi_processing"]
    assert threads([*multi, "--direct_num_workers=2"], cores=8) == 4
    assert threads([*multi, "--direct_num_workers=3"], cores=8) == 2
    assert threads([*multi, "--direct_num_workers=4"], cores=2) == 1  # never none
    assert threads([*multi, "--direct_num_workers=0"], cores=8) == 1  # Beam's "a worker per core"
    assert threads(["--direct_running_mode=multi_threading", "--direct_num_workers=2"], cores=8) is None  # one process
    assert threads([], cores=8) is None  # one worker: torch's default (every core)
    assert threads([*multi, "--direct_num_workers=1"], cores=8) is None
    assert threads(["--runner", "dask", "--direct_num_workers=2", *multi], cores=8) is None


def test_worker_processes_start_with_their_share_of_the_cores(monkeypatch, tmp_path):
    import ast

    import apache_beam as beam

    from refsift.jobs import runners

    def _threads_seen(_):
        import os

        import torch

        yield os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads(), os.getpid()

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runners, "cores", lambda: 2)  # one thread each, fewer than torch's default on 2 cores or more
    args = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    pipeline = beam.Pipeline(options=runners.pipeline_options(args))
    seen = tmp_path / "seen"
    _ = (pipeline | beam.Create(range(8)) | beam.Reshuffle() | beam.FlatMap(_threads_seen)
         | beam.Map(repr) | beam.io.WriteToText(str(seen)))  # fmt: skip
    runners.run_job(pipeline, str(tmp_path), resumable=False)
    found = {ast.literal_eval(line) for path in tmp_path.glob("seen*") for line in path.read_text().splitlines()}
    assert {(env, threads) for env, threads, _ in found} == {("1", 1)}
    assert os.getpid() not in {pid for _, _, pid in found}  # measured in the worker processes
    assert "OMP_NUM_THREADS" not in os.environ  # the launcher's environment as it was


def test_a_dask_worker_killed_mid_run_costs_nothing(dask_cluster, corpus, prose_model, reference, tmp_path):
    out = tmp_path / "run"
    code = {}
    worker = threading.Thread(
        target=lambda: code.setdefault("rc", cli.main([*score_args(corpus, out, prose_model), *on_dask(dask_cluster)]))
    )
    worker.start()
    deadline = time.time() + 120
    while not list(out.glob("_chunks/*.json")) and time.time() < deadline:
        time.sleep(0.05)
    nanny = next(iter(dask_cluster.workers.values()))
    nanny.process.process.kill()  # SIGKILL: the nanny starts another, the scheduler reruns what was lost
    worker.join(timeout=300)
    assert code.get("rc") == 0
    same(snapshot(out), snapshot(reference))
    assert cli.main(["verify", str(out)]) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_portable_runner_with_a_separate_worker_pool_equals_the_direct_runner(corpus, prose_model, reference, tmp_path):
    port, log = free_port(), tmp_path / "pool.log"
    # The pool starts each SDK worker as `python`: this interpreter's, first on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "w") as errors:
        pool = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=env,
        )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait for the pool to listen
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        out = tmp_path / "run"
        portable = ["--runner", "portable", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                    f"--environment_config=localhost:{port}"]  # fmt: skip
        # A worker that cannot start leaves the job waiting for it: give up after a while, saying why.
        result, argv = [], [*score_args(corpus, out, prose_model), *portable]
        job = threading.Thread(target=lambda: result.append(cli.main(argv)), daemon=True)
        job.start()
        job.join(timeout=300)
        assert result == [0], log.read_text()[-2000:]
        same(snapshot(out), snapshot(reference))
    finally:
        pool.send_signal(signal.SIGTERM)
        pool.wait(timeout=30)


def test_dataflow_builds_the_whole_job_offline_and_writes_nothing(corpus, prose_model, tmp_path, capsys):
    pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient")
    google = ["--runner", "dataflow", "--dry_run=True", "--project", "my-project", "--region", "us-central1",
              "--temp_location", "gs://bucket/tmp", "--setup_file", str(ROOT / "setup.py")]  # fmt: skip
    argv = ["score", "--input", f"{corpus}/*", "--model", prose_model, "--reference", prose_model, "--out"]
    assert cli.main([*argv, "gs://bucket/runs/r1", *google]) == 0
    printed = capsys.readouterr().out
    for step in ("IndexCorpus", "ReadCorpus", "TokenizeWindows", "ScoreTokens[model]", "SummarizeExamples",
                 "CommitChunks"):  # fmt: skip
        assert step in printed, printed
    assert "dry run: the job was built and not submitted" in printed
    # a GPU needs GPU workers asked for, said on the launcher, whatever the launcher has
    assert cli.main([*argv, "gs://bucket/runs/r1", *google, "--device", "cuda"]) == 2
    assert "worker_accelerator" in capsys.readouterr().err
    gpu = [*google, "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"]
    assert cli.main([*argv, "gs://bucket/runs/r1", *gpu, "--device", "cuda"]) == 0


def test_novelty_on_dask_equals_the_direct_runner(dask_cluster, prose_model, code_model, tmp_path):
    """The sampler decodes its jobs in pools made by a GroupByKey, not flushed from
    finish_bundle (whose output the DaskRunner drops): the same samples on every runner."""
    argv = ["novelty", "--base", prose_model, "--finetuned", code_model, "--num-samples", "5",
            "--baseline-samples", "3", "--base-samples", "2", "--max-new-tokens", "12", "--batch-size", "2",
            "--decoding", "sample"]  # fmt: skip
    assert cli.main([*argv, "--out", str(tmp_path / "direct")]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "dask"), *on_dask(dask_cluster)]) == 0
    query = "SELECT sample_id, mode, token_ids, score FROM samples ORDER BY sample_id"
    rows, direct = (catalog.query(str(tmp_path / run), query)[1] for run in ("dask", "direct"))
    assert [r[:3] for r in rows] == [r[:3] for r in direct] and len(rows) == 10  # the same samples
    # scores to float precision: Dask's workers run torch on one thread each, which sums in another order
    assert [r[3] for r in rows] == [pytest.approx(r[3], rel=1e-5, abs=1e-6) for r in direct]
