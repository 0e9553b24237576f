r"""Greedy answers of the project's sampler against transformers' `generate` on the same GSM8K prompts:
the check that the evaluation reads a real checkpoint the way its reference implementation does.

  python scripts/smollm2_hf.py --out /tmp/smollm2_hf
  pip install -r requirements-fixtures.txt        # torch (CPU) and transformers, for the reference side
  python -m benchmarks.smollm2_eval --checkpoint=/tmp/smollm2_hf --problems=64 --max_new_tokens=384

Both sides get identical token ids: the first `problems` GSM8K test questions in ChatML with
SmolLM's system turn and the boxed-answer instruction (`prompts.Template("qwen_chat", "boxed", ...)`).
Ours: `PolicySampler` at temperature 0, float32, `batch_rows` rows a launch. Reference:
transformers' greedy `generate`, float32, left-padded batches of `hf_batch`, stopping at
<|im_end|> or <|endoftext|>. Both responses are decoded by the same tokenizer up to the first stop.
Reported: identical texts, identical extracted answers, accuracy of each (`MathVerifier`), response
tokens/s of each (wall time including our compile and transformers' first call), in
benchmarks/results/smollm2_eval.json. Without torch/transformers only our side runs.

On a shared machine the two sides can run as two processes and be compared afterwards:
  python -m benchmarks.smollm2_eval --checkpoint=DIR --sides=ours --output=/tmp/ours.json &
  python -m benchmarks.smollm2_eval --checkpoint=DIR --sides=reference --hf_threads=1 --output=/tmp/ref.json
  python -m benchmarks.smollm2_eval --checkpoint=DIR --combine=/tmp/ours.json,/tmp/ref.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
# The project's data root (configs/common.py): $AR3PO_DATA_ROOT, else ../shared/data beside the repository.
DATA_ROOT = os.environ.get("AR3PO_DATA_ROOT") or os.path.normpath(os.path.join(_HERE, "..", "..", "shared", "data"))
GSM8K = os.path.join(DATA_ROOT, "gsm8k_test.jsonl")


def ours(checkpoint: str, prompts, tokenizer, max_new_tokens: int, batch_rows: int) -> dict:
  import jax

  from ar3po_jax.evaluation import progress
  from ar3po_jax.models import hf
  from ar3po_jax.policy import PolicySampler
  from benchmarks.smollm2_levels import _sampling_params

  policy = hf.load_checkpoint(checkpoint, "float32")
  sampler = PolicySampler(
      policy.model, policy.params, tokenizer, _sampling_params(max_new_tokens, 0.0, tokenizer), jax.random.key(0))
  tracked = progress.Tracked(sampler, len(prompts), 1, desc="ar3po_jax greedy")
  start = time.perf_counter()
  ids, lengths = [], []
  for i in range(0, len(prompts), batch_rows):
    tokens, _, n, _ = tracked.generate([p.token_ids for p in prompts[i : i + batch_rows]])
    ids += [t[:k].tolist() for t, k in zip(tokens, n)]
    lengths += [int(k) for k in n]
  seconds = time.perf_counter() - start
  tracked.close()
  return {"ids": ids, "lengths": lengths, "seconds": seconds}


def reference(checkpoint: str, prompts, tokenizer, max_new_tokens: int, batch: int, threads: int = 0) -> dict:
  import torch
  import transformers

  if threads:
    # On a CPU shared with other jobs, torch's OpenMP workers spin at every barrier waiting for a
    # descheduled sibling; one thread avoids that (this session's try at 2 threads beside two busy
    # processes had not finished its first generate call of 16 rows after 10 minutes).
    torch.set_num_threads(threads)

  model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
  stops = list(tokenizer.stop_ids)
  start = time.perf_counter()
  ids, lengths = [], []
  for i in range(0, len(prompts), batch):
    chunk = [p.token_ids.tolist() for p in prompts[i : i + batch]]
    width = max(len(c) for c in chunk)
    input_ids = torch.tensor([[tokenizer.pad_id] * (width - len(c)) + c for c in chunk])
    mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk])
    with torch.no_grad():
      out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                           eos_token_id=stops, pad_token_id=tokenizer.pad_id)
    for row in out[:, width:].tolist():
      end = next((j + 1 for j, t in enumerate(row) if t in stops), len(row))  # through the first stop, as ours
      ids.append(row[:end])
      lengths.append(end)
    print(f"transformers: {min(i + batch, len(prompts))}/{len(prompts)} problems, {time.perf_counter() - start:.0f} s",
          flush=True)
  return {"ids": ids, "lengths": lengths, "seconds": time.perf_counter() - start}


def compare(texts_a, texts_b, answers, extract, verify) -> dict:
  """Counts of identical texts and extracted answers, and each side's accuracy."""
  got_a, got_b = [extract(t) for t in texts_a], [extract(t) for t in texts_b]
  return {
      "identical_texts": int(sum(a == b for a, b in zip(texts_a, texts_b))),
      "identical_answers": int(sum(a == b for a, b in zip(got_a, got_b))),
      "accuracy_ours": float(np.mean(verify(texts_a, answers))),
      "accuracy_reference": float(np.mean(verify(texts_b, answers))),
  }


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True)
  parser.add_argument("--data", default=GSM8K)
  parser.add_argument("--problems", type=int, default=64)
  parser.add_argument("--max_new_tokens", type=int, default=384)
  parser.add_argument("--batch_rows", type=int, default=64, help="our rows per launch")
  parser.add_argument("--hf_batch", type=int, default=16, help="transformers' rows per generate call")
  parser.add_argument("--hf_threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
  parser.add_argument("--sides", default="ours,reference", help="which to run: ours, reference or both")
  parser.add_argument(
      "--combine", default="", help="comma-separated reports of single sides to compare instead of running")
  parser.add_argument("--output", default=os.path.join(_HERE, "results", "smollm2_eval.json"))
  args = parser.parse_args(argv)

  from ar3po_jax import datasets
  from ar3po_jax.datasets.prompts import Template
  from ar3po_jax.rewards import MathVerifier, extract_answer
  from ar3po_jax.tasks.arithmetic_chat import SMOLLM_SYSTEM
  from ar3po_jax.tokenizers import load_tokenizer
  from benchmarks import machine

  problems, _ = datasets.load("gsm8k", args.data, limit=args.problems)
  template = Template("qwen_chat", "boxed", SMOLLM_SYSTEM)
  tokenizer = template.bind(load_tokenizer(args.checkpoint))
  prompts = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in problems]
  report = {"machine": machine.describe(), "args": vars(args), "prompt_tokens": [len(p.token_ids) for p in prompts]}
  sides = {}
  for path in filter(None, args.combine.split(",")):  # sides measured by separate processes (run in parallel)
    with open(path) as f:
      found = json.load(f)["sides"]
    for name, side in found.items():  # a side run on more problems is compared on the first --problems
      if len(side["ids"]) < len(prompts):
        raise ValueError(f"{path}: side {name!r} has {len(side['ids'])} answers, fewer than --problems={len(prompts)}")
      if len(side["ids"]) > len(prompts):
        kept = len(prompts) / len(side["ids"])
        side.update(ids=side["ids"][: len(prompts)], lengths=side["lengths"][: len(prompts)],
                    seconds=side["seconds"] * kept, seconds_prorated=True)
      sides[name] = side
  wanted = [] if args.combine else args.sides.split(",")
  if "ours" in wanted:
    sides["ours"] = ours(args.checkpoint, prompts, tokenizer, args.max_new_tokens, args.batch_rows)
    # Saved at once, so a reference side that is stopped does not lose it (`--combine` reads it back).
    machine.write_report(args.output, {**report, "sides": sides})
  if "reference" in wanted:
    try:
      sides["reference"] = reference(
          args.checkpoint, prompts, tokenizer, args.max_new_tokens, args.hf_batch, args.hf_threads)
    except ImportError as e:
      print(f"transformers side skipped: {e}")
  answers = [p.answer for p in prompts]
  with MathVerifier(timeout_s=5.0) as verifier:
    for name, side in sides.items():
      side["texts"] = [tokenizer.decode(i) for i in side["ids"]]
      side["tokens"] = int(sum(side["lengths"]))
      side["tokens_per_second"] = side["tokens"] / side["seconds"]
      side["accuracy"] = float(np.mean(verifier(side["texts"], answers)))
      side["truncated"] = int(sum(
          n >= args.max_new_tokens and i[-1] not in tokenizer.stop_ids for n, i in zip(side["lengths"], side["ids"])))
      print(f"{name}: accuracy {side['accuracy']:.3f}, {side['tokens']} tokens in {side['seconds']:.0f} s "
            f"({side['tokens_per_second']:.1f} tok/s), {side['truncated']} truncated")
    if "reference" in sides and "ours" in sides:
      report["comparison"] = compare(
          sides["ours"]["texts"], sides["reference"]["texts"], answers, extract_answer, verifier)
      c = report["comparison"]
      print(f"identical texts {c['identical_texts']}/{len(prompts)}, "
            f"identical extracted answers {c['identical_answers']}/{len(prompts)}")
  report["sides"] = sides
  machine.write_report(args.output, report)
  print(f"report: {args.output}")
  return report


if __name__ == "__main__":
  main()
