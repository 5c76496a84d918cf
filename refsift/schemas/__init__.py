"""Explicit pyarrow schemas for every table refsift writes; one module per table.

Role-dependent tables (`tokens`, `examples`) are built from the ordered list of role names,
e.g. ["model", "reference", "ckpt1"]: their per-role columns are `nll_<role>` (and
`bpb_<role>`).
"""

from refsift.schemas.attribution import ATTRIBUTION_DOCUMENTS_SCHEMA, ATTRIBUTION_SCHEMA
from refsift.schemas.clusters import CLUSTERS_SCHEMA
from refsift.schemas.examples import DERIVED_SCORES, examples_schema
from refsift.schemas.export import DOCUMENT_EXPORT_SCHEMA, EXPORT_SCHEMA
from refsift.schemas.rejected import REJECT_REASONS, REJECTED_SCHEMA
from refsift.schemas.samples import SAMPLE_MODES, SAMPLES_SCHEMA
from refsift.schemas.tokens import tokens_schema

__all__ = [
    "ATTRIBUTION_DOCUMENTS_SCHEMA",
    "ATTRIBUTION_SCHEMA",
    "CLUSTERS_SCHEMA",
    "DERIVED_SCORES",
    "DOCUMENT_EXPORT_SCHEMA",
    "EXPORT_SCHEMA",
    "REJECTED_SCHEMA",
    "REJECT_REASONS",
    "SAMPLE_MODES",
    "SAMPLES_SCHEMA",
    "examples_schema",
    "tokens_schema",
]
