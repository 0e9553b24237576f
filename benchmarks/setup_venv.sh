#!/usr/bin/env bash
# Creates .venv-bench: the project's runtime requirements plus the benchmark peers. The two pins
# of requirements.txt that the peers cannot share (tokenizers, huggingface-hub) give way to
# benchmarks/requirements.txt's; nothing in the benchmarks imports them.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3.11}"
"$python" -m venv .venv-bench
filtered="$(mktemp)"
trap 'rm -f "$filtered"' EXIT
grep -vE '^(tokenizers|huggingface-hub)==' requirements.txt > "$filtered"
.venv-bench/bin/pip install -q -r "$filtered" -r benchmarks/requirements.txt
.venv-bench/bin/pip check
