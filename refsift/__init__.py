"""refsift: score text corpora with reference language models, select what to train on,
and find out what a fine-tuned model learned.

The command line (`refsift --help`) and the modules below share one code path:
`refsift.pipelines` builds Beam pipelines from the transforms in `refsift.transforms`,
whose compute kernels live in `refsift.kernels`; `refsift.catalog` opens the results.
"""

__version__ = "0.1.0"

from refsift.api import Run, finetune, novelty, open_run, report, score, select  # noqa: E402

__all__ = ["Run", "finetune", "novelty", "open_run", "report", "score", "select"]
