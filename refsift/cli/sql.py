"""`refsift sql`: one read-only query over a run's catalog."""

from __future__ import annotations

import csv
import json
import sys

from refsift.cli.common import COMMON, Help, in_range
from refsift.config import MAX_TIMEOUT
from refsift.jobs.console import format_table


def add(sub) -> None:
    p = sub.add_parser(
        "sql",
        parents=[COMMON],
        formatter_class=Help,
        help="query a run's catalog (read-only)",
        description="Runs one read-only SQL statement against a run's DuckDB catalog: views examples, tokens, "
        "rejected, token_scores and any registered selections. Statements that write are refused; the query can "
        "reach no file outside the run, and is stopped past --timeout.",
    )
    p.add_argument("run_dir")
    p.add_argument("query")
    p.add_argument(
        "--format",
        default="table",
        choices=["table", "csv", "json", "jsonl"],
        help="jsonl: one object per row, an input any refsift command reads (e.g. samples as attribution targets)",
    )
    p.add_argument(
        "--timeout", type=in_range(float, 0, MAX_TIMEOUT), default=60.0, help="seconds a query may run; 0: no limit"
    )
    p.add_argument(
        "--memory-limit",
        default="50%",
        help="memory the query may use (e.g. 4GB, or a share of the machine's); beyond it DuckDB spills to a "
        "temporary directory refsift removes afterwards",
    )
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift import catalog

    columns, rows = catalog.query(
        args.run_dir, args.query, timeout=args.timeout or None, memory_limit=args.memory_limit
    )
    if args.format == "table":
        print(format_table(columns, rows))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif args.format == "json":
        print(json.dumps([dict(zip(columns, row)) for row in rows], default=str, indent=1))
    else:
        for row in rows:
            print(json.dumps(dict(zip(columns, row)), default=str, ensure_ascii=False))
