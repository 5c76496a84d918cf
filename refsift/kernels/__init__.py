"""Compute kernels: plain functions over lists and tensors, usable without Beam.

torch is imported inside the functions that need it, so that building a pipeline or
querying a catalog does not pay for it.
"""
