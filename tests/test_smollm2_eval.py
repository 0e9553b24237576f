"""benchmarks/smollm2_eval.py: the comparison of our greedy answers with the reference's."""

from __future__ import annotations

import numpy as np

from ar3po_jax.rewards import extract_answer
from benchmarks.smollm2_eval import compare


def test_compare_counts_texts_answers_and_accuracy():
  ours = ["so \\boxed{4}", "\\boxed{7}", "no answer", "x \\boxed{3}"]
  ref = ["so \\boxed{4}", "we get \\boxed{7}", "still none", "x \\boxed{5}"]
  exact = lambda texts, answers: np.asarray([extract_answer(t) == a for t, a in zip(texts, answers)], float)  # noqa: E731
  out = compare(ours, ref, ["4", "7", "1", "5"], extract_answer, exact)
  # Texts: only the first is identical; answers: 4 = 4, 7 = 7, None = None, 3 != 5.
  assert out == {"identical_texts": 1, "identical_answers": 3, "accuracy_ours": 0.5, "accuracy_reference": 0.75}
