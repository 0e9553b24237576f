"""Real math data sets: file loaders with field mappings, and TFDS builders over them."""

from ar3po_jax.datasets.loaders import DEFAULT_FILES, KNOWN, load, strip_dapo_instruction
from ar3po_jax.datasets.records import DataError, FieldMap, LoadStats, MathProblem

__all__ = [
    "DEFAULT_FILES", "DataError", "FieldMap", "KNOWN", "LoadStats", "MathProblem", "load", "strip_dapo_instruction"
]
