"""`refsift verify`: is a run directory what refsift wrote? (shards, digests, counts)"""

from __future__ import annotations

from refsift.cli.common import COMMON, Help


def add(sub) -> None:
    p = sub.add_parser(
        "verify",
        parents=[COMMON],
        formatter_class=Help,
        help="check that a run directory is what refsift wrote (after copying it, say)",
        description="Checks a complete run directory against its own records: every planned task committed, every "
        "shard present and byte for byte what its chunk wrote (size and SHA-256 in the chunk's marker), no shard "
        "that no chunk wrote, the manifest's counts equal to the chunks', and a catalog refsift could have written "
        "(its metadata tables, no table reaching outside the run, every view one SELECT). Prints what it checked; "
        "exits 1 and lists the problems when there are any. A run with "
        "problems is repaired by the command that made it, with --resume: it scores the damaged chunks again.",
    )
    p.add_argument("run_dir")
    p.set_defaults(handler=run)


def run(args, _beam_args) -> int:
    from refsift import catalog
    from refsift.errors import RefsiftError
    from refsift.jobs import ledger, rundir
    from refsift.transforms.commit_chunks import TABLES

    rundir.require(args.run_dir, ("run", "dedup"))
    manifest = rundir.read_json(rundir.join(args.run_dir, "manifest.json")) or {}
    problems, checked = ledger.audit(args.run_dir, tuple(manifest.get("tables", TABLES)))
    found = catalog.problems(args.run_dir)  # the catalog's own definitions, read locked
    if not found:
        try:
            catalog.connect(args.run_dir).close()
        except RefsiftError as err:
            found.append(str(err))
    problems += found
    if problems:
        print(f"{args.run_dir}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        for problem in problems:
            print(f"  {problem}")
        print("the command that made the run, with --resume, scores the damaged chunks again")
        return 1
    print(
        f"{args.run_dir}: sound. {checked['shards']} shards of {checked['chunks']} chunks verified (SHA-256); read "
        f"{checked['read']} = scored {checked['scored']} + rejected {checked['rejected']}, as the manifest says"
    )
    return 0
