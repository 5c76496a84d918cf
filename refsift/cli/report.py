"""`refsift report`: a self-contained page for a scoring run."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help


def add(sub) -> None:
    p = sub.add_parser(
        "report",
        parents=[COMMON],
        formatter_class=Help,
        help="write a self-contained HTML page for a scoring run",
        description="Counts and rejections, per-source score distributions, nll_model against nll_reference, "
        "the top and bottom documents by each score with tokens shaded, and the registered selections.",
    )
    p.add_argument("run_dir")
    p.add_argument("--out", help="HTML file to write (default: RUN_DIR/report.html)")
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift import catalog
    from refsift.errors import RefsiftError
    from refsift.jobs import rundir
    from refsift.pages import run as run_report_page

    found = rundir.marker(args.run_dir) or {}
    if found.get("kind") in ("dedup", "novelty", "attribution"):
        what = rundir.KINDS[found["kind"]]
        raise RefsiftError(f"{args.run_dir} is a {what}, which has its page already: {args.run_dir}/report.html")
    rundir.require(args.run_dir, "run")
    if "roles" not in (rundir.read_json(rundir.join(args.run_dir, "manifest.json")) or {}):
        raise RefsiftError(f"{args.run_dir} is a classification run: it has no losses to show; query it (refsift sql)")
    catalog.connect(args.run_dir).close()  # a clear error for a catalog that is not what refsift wrote
    print(f"wrote {run_report_page.write(args.run_dir, args.out)}")
