r"""Pass rates of a chat checkpoint on each level of the arithmetic task (tasks/arithmetic_chat.py):
the measurement that picks the SmolLM2 task's level weights.

  python scripts/smollm2_hf.py --out /tmp/smollm2_hf
  python -m benchmarks.smollm2_levels --checkpoint=/tmp/smollm2_hf --prompts=12 --samples=4

Per level: `prompts` distinct problems x `samples` responses at `temperature` (our sampler, float32),
asked and verified as `answer_format` says (boxed: the last \boxed{} integer; number: the bare final
number, read leniently; tasks/arithmetic_chat.py); reports the fraction of samples correct, the histogram of
per-prompt correct counts (0..samples) and the fraction of prompts with mixed outcomes. Writes
benchmarks/results/smollm2_levels.json.
"""

from __future__ import annotations

import argparse
import os
import time


def _sampling_params(max_new_tokens: int, temperature: float, tokenizer):
  """SamplingParams with every stop token of the chat format."""
  from ar3po_jax.sampling import SamplingParams

  return SamplingParams(max_new_tokens, temperature, 1.0, 0, tuple(tokenizer.stop_ids), tokenizer.pad_id)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True)
  parser.add_argument("--prompts", type=int, default=12, help="distinct problems per level")
  parser.add_argument("--samples", type=int, default=4, help="responses per problem")
  parser.add_argument("--levels", default="1,2,3,4,5")
  parser.add_argument("--max_new_tokens", type=int, default=128)
  parser.add_argument("--temperature", type=float, default=1.0)
  parser.add_argument("--seed", type=int, default=0, help="problem draw and sampling seed")
  parser.add_argument("--answer_format", default="boxed", choices=("boxed", "number"),
                      help="the task's answer_format: instruction and verifier (tasks/arithmetic_chat.py)")
  parser.add_argument(
      "--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "smollm2_levels.json"))
  args = parser.parse_args(argv)

  import jax

  from ar3po_jax.datasets.prompts import Template
  from ar3po_jax.evaluation import pass_rate_summary, progress, sample_and_verify
  from ar3po_jax.models import hf
  from ar3po_jax.policy import PolicySampler
  from ar3po_jax.tasks import arithmetic_chat
  from ar3po_jax.tokenizers import load_tokenizer
  from benchmarks import machine

  policy = hf.load_checkpoint(args.checkpoint, "float32")
  template = Template(
      "qwen_chat", arithmetic_chat.template_instruction(args.answer_format), arithmetic_chat.SMOLLM_SYSTEM)
  tokenizer = template.bind(load_tokenizer(args.checkpoint))
  sampling = _sampling_params(args.max_new_tokens, args.temperature, tokenizer)
  sampler = PolicySampler(policy.model, policy.params, tokenizer, sampling, jax.random.key(args.seed))
  report = {"machine": machine.describe(), "args": vars(args), "levels": {}}
  for level in [int(x) for x in args.levels.split(",")]:
    prompts = arithmetic_chat.to_prompts(
        arithmetic_chat.level_problems(args.seed, level, args.prompts), template, tokenizer, args.answer_format)
    tracked = progress.Tracked(sampler, len(prompts), args.samples, desc=f"level {level}")
    start = time.time()
    out = sample_and_verify(
        tracked, prompts, arithmetic_chat.make_verifier(args.answer_format), args.samples, len(prompts) * args.samples,
        keep_texts=True)
    tracked.close()
    rates = out["rewards"].mean(axis=1)
    summary = pass_rate_summary(rates, args.samples)
    report["levels"][str(level)] = {
        "pass_rate": float(out["rewards"].mean()),
        **summary,
        "mean_response_tokens": float(out["lengths"].mean()),
        "truncated_frac": float(out["truncated"].mean()),
        "seconds": time.time() - start,
        "tokens_per_second": tracked.tokens_per_second,
        "examples": [
            {"question": p.text, "answer": p.answer, "responses": t[:2]} for p, t in zip(prompts[:3], out["texts"])],
    }
    r = report["levels"][str(level)]
    print(f"level {level}: pass rate {r['pass_rate']:.3f}  histogram {summary['histogram']}  "
          f"mixed {summary['frac_pass_mixed']:.2f}  {r['mean_response_tokens']:.0f} tokens/response, "
          f"truncated {r['truncated_frac']:.2f}, {r['seconds']:.0f} s", flush=True)
    machine.write_report(args.output, report)  # after every level, so a cut run keeps what it measured
  print(f"report: {args.output}")
  return report


if __name__ == "__main__":
  main()
