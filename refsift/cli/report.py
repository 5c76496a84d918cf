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
    from refsift.pages import run as run_report_page

    catalog.connect(args.run_dir).close()  # a clear error for a directory that is not a run
    print(f"wrote {run_report_page.write(args.run_dir, args.out)}")
