"""Throughput of `MathVerifier` on 10,000 MATH-500-shaped responses (a quick check, not a test).

  python -m ar3po_jax.rewards.bench [--data DATA_ROOT/math500_test.jsonl] [--n 10000]

DATA_ROOT is $AR3PO_DATA_ROOT, else the `shared/data` folder next to the repository (as configs/common.py).

Each gold answer gets responses in several shapes (boxed, `Answer:` line, Minerva sentence, a wrong
boxed answer, a perturbed expression, no answer), so the run mixes the fast path, the sympy pool and
unanswered responses in proportions close to an evaluation. Batches of 500 are verified in turn, as a
training step would; the time includes the one-time worker start.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def _responses(gold: str, k: int, keep: list[int] | None = None) -> list[str]:
  shapes = [
      lambda: f"Some reasoning.\nThus the answer is $\\boxed{{{gold}}}$.",
      lambda: f"Reasoning...\nAnswer: {gold}",
      lambda: f"Final Answer: The final answer is ${gold}$. I hope it is correct.",
      lambda: f"So we get \\boxed{{{gold}+1}}.",
      lambda: f"So we get \\boxed{{2\\cdot({gold})}}.",
      lambda: f"The result is {gold}, I think.",
      lambda: f"\\boxed{{{gold}}} " + "padding " * 50,
      lambda: "I could not solve it.",
  ]
  shapes = [shapes[i] for i in keep] if keep else shapes
  return [shapes[i % len(shapes)]() + " " * (i // len(shapes)) for i in range(k)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  data_root = os.environ.get("AR3PO_DATA_ROOT") or os.path.join(repo, "..", "shared", "data")
  parser.add_argument("--data", default=os.path.normpath(os.path.join(data_root, "math500_test.jsonl")))
  parser.add_argument("--n", type=int, default=10_000)
  parser.add_argument("--batch", type=int, default=500)
  parser.add_argument("--fallback", default=None)
  parser.add_argument("--shapes", default="", help="comma-separated indices of the response shapes to use")
  args = parser.parse_args()

  from ar3po_jax.rewards import MathVerifier

  with open(args.data) as f:
    golds = [json.loads(line)["answer"] for line in f if line.strip()]
  per_gold = max(1, args.n // len(golds))
  texts, answers = [], []
  for gold in golds:
    texts += _responses(gold, per_gold, [int(i) for i in args.shapes.split(",") if i])
    answers += [gold] * per_gold
  texts, answers = texts[: args.n], answers[: args.n]
  start = time.perf_counter()
  with MathVerifier(fallback=args.fallback) as verifier:
    correct = 0.0
    for i in range(0, len(texts), args.batch):
      correct += float(verifier(texts[i : i + args.batch], answers[i : i + args.batch]).sum())
    metrics = verifier.metrics()
  elapsed = time.perf_counter() - start
  print(f"{len(texts)} responses in {elapsed:.1f} s ({len(texts) / elapsed:.0f}/s), reward sum {correct:.0f}")
  print({k: round(v, 4) for k, v in metrics.items()})


if __name__ == "__main__":
  main()
