"""refsift: score text corpora with reference language models, select what to train on,
and find out what a fine-tuned model learned.

The command line (`refsift --help`) and the modules below share one code path:
`refsift.pipelines` builds Beam pipelines from the transforms in `refsift.transforms`,
whose compute kernels live in `refsift.kernels`; `refsift.catalog` opens the results.
The Python API (`refsift.score`, `refsift.select`, ...) is `refsift.api`, loaded on first
use so that `import refsift` stays light.
"""

__version__ = "0.2.0"

__all__ = ["Run", "attribute", "finetune", "novelty", "open_run", "report", "score", "select"]


def __getattr__(name: str):
    if name in __all__:
        from refsift import api

        return getattr(api, name)
    raise AttributeError(f"module 'refsift' has no attribute {name!r}")
