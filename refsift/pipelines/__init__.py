"""Pipelines: each builds a Beam graph from the transforms, runs it, and finishes on the
launcher (catalog, manifest, checks). `refsift.cli` calls these."""
