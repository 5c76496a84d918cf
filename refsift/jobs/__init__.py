"""The launcher machinery every command shares, apart from what any command computes.

- `runners`: Beam options from refsift's arguments, runner and device checks, running a
  pipeline on any runner (`run_job`).
- `ledger`: a chunk job's plan and completion markers, the digests of the shards they name,
  and the one integrity check that `--resume`, the end of a job and `refsift verify` use.
- `executor`: `ChunkJob` (what a command declares: its tables, counts, steps) and `execute`,
  which claims the directory, resumes, runs, checks and writes the catalog. It knows no
  command by name.
- `reading`: the reading steps every chunk job starts with, and the copies a dedup run
  removed.
- `rundir`: which directories refsift may write, replace or read; `progress`: the live
  progress line; `console`: what a job shows on the terminal.
"""
