"""Verifiable rewards: the exact boxed-integer check and the full math answer verifier.

Importing this package does not import sympy; only the verifier's worker processes do.
"""

from ar3po_jax.rewards.config import VerifyConfig
from ar3po_jax.rewards.exact import ExactVerifier, boxed_integer_reward, last_boxed_integer
from ar3po_jax.rewards.extract import extract_answer, ground_truth_answer, last_boxed
from ar3po_jax.rewards.verifier import MathVerifier, math_reward, shared_verifier

__all__ = [
    "ExactVerifier",
    "MathVerifier",
    "VerifyConfig",
    "boxed_integer_reward",
    "extract_answer",
    "ground_truth_answer",
    "last_boxed",
    "last_boxed_integer",
    "math_reward",
    "shared_verifier",
]
