"""Beam options from the arguments refsift passed through, checked on the launcher before any
work (runner, Dask scheduler, device), and running a pipeline on any runner so that a
failure or Ctrl-C ends in one line.
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from refsift.errors import Interrupted, RefsiftError, explain, interrupted
from refsift.jobs import console, ledger
from refsift.jobs.console import plural
from refsift.transforms.runner_quirks import on_dask

RUNNERS = {
    "direct": "DirectRunner",
    "dask": "apache_beam.runners.dask.dask_runner.DaskRunner",
    "portable": "PortableRunner",
    "dataflow": "DataflowRunner",
}


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


BYTES_PER_WORKER = 64 * 2**20  # a worker process starts in seconds: worth it for this much input


def per_core(options: PipelineOptions, tasks: int, size: int) -> PipelineOptions:
    """For work that holds one core per worker (MinHash, fastText): on the DirectRunner, a
    worker process per core, up to one per task (a task is what a worker takes) and one per
    64 MB of input (`size` bytes; below that a second process costs more to start than it
    saves), unless the options name the DirectRunner's mode or workers. On 2 cores, at
    197,200 documents (250 MB), dedup went from 85 s to 49 s and classify from 25 s to 16 s;
    at 25 MB, classify took 7.9 s in two processes and 5.5 s in one (README, "Parallel on
    one machine")."""
    given = _direct(options)
    told = any(flag.startswith(("--direct_num_workers", "--direct_running_mode")) for flag in options._flags)
    if given is None or told:
        return options
    workers = min(cores(), tasks, size // BYTES_PER_WORKER)
    if workers < 2:
        return options
    return PipelineOptions.from_dictionary(
        {**given, "direct_running_mode": "multi_processing", "direct_num_workers": workers}
    )


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def threads_per_worker(options: PipelineOptions) -> int | None:
    """The threads each worker process may use when the DirectRunner runs several on this
    machine: they share its cores, where torch would give each of them every core (an
    8-proxy ablation took 71 s in two processes against 19 s in one, on 2 cores). None
    elsewhere: one process, threads of one process, or another runner's machines."""
    direct = options.view_as(DirectOptions)
    if _direct(options) is None or direct.direct_running_mode != "multi_processing":
        return None
    workers = direct.direct_num_workers or cores()  # 0: Beam's "as many as cores"
    return max(1, cores() // workers) if workers > 1 else None


@contextmanager
def worker_threads(options: PipelineOptions):
    """While a job runs, the worker processes it starts get `threads_per_worker` threads
    for torch and BLAS (OMP_NUM_THREADS and its kin, read when a worker imports them),
    unless the environment already sets them."""
    threads = threads_per_worker(options)
    unset = [name for name in THREAD_VARIABLES if name not in os.environ] if threads else []
    os.environ.update({name: str(threads) for name in unset})
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


def _direct(options: PipelineOptions) -> dict | None:
    """The options as given, when they run the DirectRunner (the default); else None."""
    given = options.get_all_options(drop_default=True)
    runner = str(given.get("runner") or "DirectRunner").rsplit(".", 1)[-1]
    return given if runner == "DirectRunner" else None


def _short_forms(beam_args: list[str]) -> list[str]:
    """`--runner dask` (direct, portable, dataflow) and `--dask-address A` in Beam's terms."""
    args, out = list(beam_args), []
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--runner", "--dask-address") and not eq and args:
            value, eq = args.pop(0), "="
        if name == "--runner" and eq:
            out.append(f"--runner={RUNNERS.get(value.lower(), value)}")
        elif name == "--dask-address" and eq:
            out.append(f"--dask_client_address={value}")
        else:
            out.append(arg)
    return out


def _check_runner(name: str) -> None:
    """Refuses, on the launcher, a --runner that is not a Beam runner: Beam would fail deep
    inside the job, or import and call whatever a dotted name names."""
    from apache_beam.runners.runner import PipelineRunner

    known = {path.rsplit(".", 1)[-1].lower() for path in StandardOptions.ALL_KNOWN_RUNNERS}
    if name.lower() in known or f"{name.lower()}runner" in known:
        return
    module, _, attribute = name.rpartition(".")
    try:
        runner = getattr(importlib.import_module(module), attribute) if module else None
    except (ImportError, AttributeError, ValueError, TypeError):
        runner = None
    if not (isinstance(runner, type) and issubclass(runner, PipelineRunner)):
        raise RefsiftError(
            f"--runner {name}: not a Beam runner; use direct, dask, portable or dataflow (or the full name of a "
            "PipelineRunner class)"
        )


def _check_dask_address(address: str) -> None:
    """Refuses, on the launcher, a Dask scheduler that cannot be reached: the job would fail
    only after its plan is written, with advice (--resume) that cannot help."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise RefsiftError(f"--dask-address {address}: give the scheduler as HOST:PORT (tcp://HOST:PORT)")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as err:
        raise RefsiftError(f"--dask-address {address}: no scheduler answers there ({err.strerror or err})") from None


def _register_runner_options(beam_args: list[str]) -> None:
    """A runner's own options are known to Beam once its module is imported (Dask's)."""
    runner = next((a.partition("=")[2] for a in beam_args if a.startswith("--runner=")), "")
    if "dask" in runner.lower():  # before the options exist
        try:
            import apache_beam.runners.dask.dask_runner  # noqa: F401 (registers DaskOptions)
            import distributed  # noqa: F401
        except ImportError:
            raise RefsiftError("the Dask runner needs dask: pip install 'dask[distributed]'") from None


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the arguments refsift passed through; DirectRunner unless told.
    Short forms: `--runner direct|dask|portable|dataflow`, `--dask-address ADDRESS`.

    Beam only logs a warning for an option it does not know, so a typo such as
    `--max-lenght` would be lost silently, and a stray path would be ignored: unknown
    options and positional arguments are refused here instead.
    """
    beam_args = _short_forms(beam_args)
    _register_runner_options(beam_args)
    for arg in beam_args:
        if arg.startswith("--runner="):
            _check_runner(arg.partition("=")[2])
        if arg.startswith("--dask_client_address="):
            _check_dask_address(arg.partition("=")[2])
    parsers = []
    PipelineOptions(beam_args).get_all_options(add_extra_args_fn=parsers.append)
    _, unknown = parsers[0].parse_known_args(beam_args)
    options = [arg for arg in unknown if arg.startswith("-")]
    if options:
        raise RefsiftError(f"unrecognized arguments: {' '.join(options)}")
    if unknown:
        raise RefsiftError(
            f"unexpected argument {unknown[0]!r}: give inputs with --input, Beam options as --name=value"
        )
    if not any(arg.startswith("--runner") for arg in beam_args):
        beam_args = ["--runner=DirectRunner", *beam_args]
    return PipelineOptions(beam_args)


def runner_name(options: PipelineOptions) -> str:
    return str(options.view_as(StandardOptions).runner or "DirectRunner")


def is_dataflow(options: PipelineOptions) -> bool:
    return "dataflow" in runner_name(options).lower()


def check_device(device: str, options: PipelineOptions) -> None:
    """The device a job's workers will use, refused on the launcher before any work. On
    Dataflow the workers are other machines: a CUDA device needs GPU workers asked for (the
    launcher itself may have no GPU); elsewhere the workers are this machine's processes."""
    from refsift import models

    if not is_dataflow(options):
        models.check_device(device)
        return
    if device.startswith("cuda"):
        from apache_beam.options.pipeline_options import GoogleCloudOptions

        service = options.view_as(GoogleCloudOptions).dataflow_service_options or []
        if not any("worker_accelerator" in option for option in service):
            raise RefsiftError(
                f"--device {device} on Dataflow needs GPU workers: --dataflow_service_options "
                "'worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver' and a worker image with CUDA torch "
                "(--sdk_container_image; see docker/Dockerfile)"
            )


def dry_run(options: PipelineOptions) -> bool:
    """Dataflow's `--dry_run`: the job is built and validated, not submitted."""
    from apache_beam.options.pipeline_options import TestOptions

    return is_dataflow(options) and bool(options.view_as(TestOptions).dry_run)


class _Leaves(beam.pipeline.PipelineVisitor):
    """The PCollections a pipeline makes and no step reads: its sinks' outputs."""

    def __init__(self):
        self.made, self.read = [], set()

    def visit_transform(self, node):
        self.made += [o for o in node.outputs.values() if isinstance(o, beam.pvalue.PCollection)]
        self.read |= {id(i) for i in node.inputs} | {id(s.pvalue) for s in node.side_inputs}


def join_sinks(pipeline: beam.Pipeline) -> None:
    """Makes every sink an input of one final step. Beam's DaskRunner computes only the
    graph of the last step it visits, so a pipeline with several sinks (scoring's index
    total, selection's data and statistics) would lose all but one of them."""
    leaves = _Leaves()
    pipeline.visit(leaves)
    sinks = [p for p in leaves.made if id(p) not in leaves.read]
    if len(sinks) > 1:
        _ = tuple(sinks) | "JoinSinks" >> beam.Flatten() | "Done" >> beam.Filter(lambda _: False)


def finish(result) -> None:
    """Waits for a job; closes the Dask client Beam's DaskRunner opened and leaves open (it
    would keep reconnecting to a cluster that has gone)."""
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)
        if client is not None:
            client.close()


def run_job(pipeline, out: str, *, what: str = "run", resumable: bool = True) -> None:
    """Runs a job. Its workers' own output goes to a log file (unless --verbose); Ctrl-C or
    a failure becomes one line, which for a chunk job (`resumable`) names how many chunks
    are committed and that `--resume` finishes the run."""
    if on_dask(pipeline.options):
        join_sinks(pipeline)
    with console.worker_output() as log_file, worker_threads(pipeline.options):
        try:
            finish(pipeline.run())
        except (KeyboardInterrupt, Exception) as err:
            where = f" (the workers' output is in {log_file})" if log_file else ""
            if not resumable:
                if interrupted(err):
                    raise Interrupted(f"interrupted: the {what} is incomplete") from None
                raise RefsiftError(f"the {what} stopped: {explain(err)}{where}") from None
            done = len(ledger.read_markers(out))
            if interrupted(err):
                raise Interrupted(
                    f"interrupted: {plural(done, 'chunk')} of the {what} committed; the same command with --resume "
                    "finishes it"
                ) from None
            raise RefsiftError(
                f"the {what} stopped: {explain(err)}. {plural(done, 'chunk')} committed; once that is fixed, the same "
                f"command with --resume finishes it{where}"
            ) from None
