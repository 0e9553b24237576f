#!/usr/bin/env bash
# The training command as N JAX processes on this machine, each with its own CPU devices: the same
# multi-controller code path as a TPU pod (coordinator, global arrays, cross-process collectives),
# testable anywhere.
#
#   launch/local_multiprocess.sh N [ar3po_jax.main flags...]
#   launch/local_multiprocess.sh 2 --config=configs/tiny.py:ar3po --workdir=/tmp/mp --config.mesh.tensor=2
#
# Environment: DEVICES_PER_PROCESS (default 2), PORT (default: a free one), PYTHON (default: python3),
# LOG_DIR (default: a new temporary folder; process I logs to LOG_DIR/process_I.log).
# Process 0's output is also printed here. The exit status is the first failing process's, and a
# failure stops the other processes, which would otherwise wait for their peer until timing out.
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NUM_PROCESSES [ar3po_jax.main flags...]" >&2
  exit 2
fi
num_processes=$1
shift
devices=${DEVICES_PER_PROCESS:-2}
python=${PYTHON:-python3}
port=${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
log_dir=${LOG_DIR:-$(mktemp -d -t ar3po_mp.XXXXXX)}
mkdir -p "$log_dir"
cd "$(dirname "$0")/.."

pids=()
stop_all() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
trap stop_all INT TERM

for ((i = 0; i < num_processes; i++)); do
  # The log exists before the process starts: the background job opens it only once forked, and the
  # `tail` below, reached first on a loaded machine, would find no file and print nothing.
  : >"$log_dir/process_$i.log"
  # CPU only: N processes on one machine must not all claim the same accelerator.
  JAX_PLATFORMS=cpu XLA_FLAGS="--xla_force_host_platform_device_count=$devices ${XLA_FLAGS:-}" \
    "$python" -m ar3po_jax.main --coordinator_address="127.0.0.1:$port" --num_processes="$num_processes" \
    --process_id="$i" "$@" >"$log_dir/process_$i.log" 2>&1 &
  pids+=($!)
done
echo "launched $num_processes processes x $devices CPU devices (coordinator 127.0.0.1:$port); logs in $log_dir"
tail -n +1 -f "$log_dir/process_0.log" --pid="${pids[0]}" &
tail_pid=$!

status=0
running=("${pids[@]}")
while ((${#running[@]} > 0)); do
  still=()
  for pid in "${running[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      still+=("$pid")
      continue
    fi
    code=0
    wait "$pid" || code=$?
    if ((code != 0 && status == 0)); then
      status=$code
      echo "process with pid $pid exited with status $status; stopping the others" >&2
      stop_all
    fi
  done
  running=("${still[@]+"${still[@]}"}")
  ((${#running[@]} == 0)) || sleep 1
done
wait "$tail_pid" 2>/dev/null || true
if ((status != 0)); then
  for ((i = 1; i < num_processes; i++)); do
    echo "--- process $i (last lines of $log_dir/process_$i.log)" >&2
    tail -n 20 "$log_dir/process_$i.log" >&2
  done
fi
exit "$status"
