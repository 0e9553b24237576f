#!/usr/bin/env bash
# One training run on a Cloud TPU VM slice, from creating the slice to deleting it:
#   create the slice -> copy this checkout (or clone --repo) to every worker -> install -> stage the
#   checkpoint and the data sets on every worker's disk -> start the same command on every worker
#   (JAX finds its peers: --distributed) -> follow worker 0's log -> copy worker 0's workdir to
#   --results -> delete the slice (also when a step fails; --keep skips).
#
#   launch/tpu_pod.sh --tpu_name=ar3po-v5p --accelerator_type=v5p-64 --zone=us-east5-a \
#       --config=configs/paper.py:ar3po,qwen25_7b --checkpoint=gs://my-bucket/Qwen2.5-7B \
#       --data=gs://my-bucket/ar3po-data --results=gs://my-bucket/ar3po/v5p-64 -- --config.rl.steps=500
#   launch/tpu_pod.sh --dry_run --tpu_name=t --accelerator_type=v5e-64   # print every command, run none
#
# Flags (--name=value or --name value); anything after `--` goes to ar3po_jax.main unchanged:
#   --tpu_name          slice name (required)
#   --accelerator_type  v4-32, v5e-64 (= v5litepod-64), v5p-64, v6e-64, ... (required)
#   --zone              default: us-central2-b for v4, us-west4-a for v5e; required for other types
#   --project           gcloud project (default: gcloud's configured one)
#   --runtime_version   TPU VM image; default by type: tpu-ubuntu2204-base (v4),
#                       v2-alpha-tpuv5-lite (v5e), v2-alpha-tpuv5 (v5p), v2-alpha-tpuv6e (v6e)
#   --config            config file[:arg] (default configs/tiny.py:ar3po); configs/paper.py takes
#                       STRATEGY,MODEL, e.g. configs/paper.py:dapo,llama31_8b
#   --checkpoint        Hugging Face checkpoint folder, gs:// or local: copied to every worker's
#                       ~/ar3po_checkpoint, and the run gets --config.model.checkpoint=that folder
#   --data              folder of data sets (the files configs/paper.py names, e.g.
#                       dapo_math_17k.parquet, math500_test.jsonl), gs:// or local: copied to every
#                       worker's ~/ar3po_data, which the run reads as its data root (AR3PO_DATA_ROOT)
#   --workdir           run folder on each worker's local disk (default /tmp/ar3po_workdir); only
#                       worker 0 (process 0) writes metrics there
#   --results           gs:// folder that receives worker 0's workdir at the end (optional)
#   --repo, --branch    clone this git repository on the workers instead of copying this checkout
#   --spot              a Spot slice (cheaper, preemptible)
#   --keep              leave the slice running at the end
#   --dry_run           print the commands (one per line, prefixed with '+') without running them
#   -h, --help          print this text
set -euo pipefail

tpu_name="" accelerator_type="" zone="" project="" runtime_version=""
config="configs/tiny.py:ar3po" workdir="/tmp/ar3po_workdir" results="" repo="" branch=""
checkpoint="" data=""
spot=0 keep=0 dry_run=0
main_args=()

usage() {  # the comment block at the top of this file
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"
}

while (($#)); do
  arg=$1
  shift
  case $arg in
    -h | --help) usage; exit 0 ;;
    --) main_args=("$@"); break ;;
    --dry_run) dry_run=1; continue ;;
    --spot) spot=1; continue ;;
    --keep) keep=1; continue ;;
    --*=*) name=${arg%%=*} value=${arg#*=} ;;
    --*)
      (($#)) || { echo "$arg needs a value" >&2; exit 2; }
      name=$arg value=$1
      shift
      ;;
    *) echo "unexpected argument: $arg (flags for ar3po_jax.main go after --)" >&2; exit 2 ;;
  esac
  case $name in
    --tpu_name) tpu_name=$value ;;
    --accelerator_type) accelerator_type=$value ;;
    --zone) zone=$value ;;
    --project) project=$value ;;
    --runtime_version) runtime_version=$value ;;
    --config) config=$value ;;
    --workdir) workdir=$value ;;
    --results) results=$value ;;
    --checkpoint) checkpoint=$value ;;
    --data) data=$value ;;
    --repo) repo=$value ;;
    --branch) branch=$value ;;
    *) echo "unknown flag: $name (see --help)" >&2; exit 2 ;;
  esac
done

[[ -n $tpu_name ]] || { echo "--tpu_name is required" >&2; exit 2; }
[[ -n $accelerator_type ]] || { echo "--accelerator_type is required (e.g. v4-32, v5e-64)" >&2; exit 2; }
# gcloud names v5e slices v5litepod-N; v5e-N is what people say.
accelerator_type=${accelerator_type/#v5e-/v5litepod-}
family=${accelerator_type%%-*}
case $family in
  v4) default_runtime=tpu-ubuntu2204-base default_zone=us-central2-b ;;
  v5litepod) default_runtime=v2-alpha-tpuv5-lite default_zone=us-west4-a ;;
  v5p) default_runtime=v2-alpha-tpuv5 default_zone="" ;;
  v6e) default_runtime=v2-alpha-tpuv6e default_zone="" ;;
  *) echo "unsupported accelerator type $accelerator_type (v4-N, v5e-N / v5litepod-N, v5p-N, v6e-N)" >&2; exit 2 ;;
esac
runtime_version=${runtime_version:-$default_runtime}
zone=${zone:-$default_zone}
[[ -n $zone ]] || { echo "--zone is required for $accelerator_type" >&2; exit 2; }
if [[ -n $results && $results != gs://* ]]; then
  echo "--results must be a gs:// folder, got $results" >&2
  exit 2
fi
for staged in "$checkpoint" "$data"; do
  if [[ -n $staged && $staged != gs://* && ! -d $staged ]]; then
    echo "--checkpoint and --data take a gs:// folder or a local folder; $staged is neither" >&2
    exit 2
  fi
done

root=$(cd "$(dirname "$0")/.." && pwd)
jax_version=$(sed -n 's/^jax==\([^ ]*\).*/\1/p' "$root/requirements.txt")
[[ -n $jax_version ]] || { echo "requirements.txt pins no jax version" >&2; exit 1; }

gcloud_tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
[[ -z $project ]] || where+=(--project="$project")

run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if ((!dry_run)); then
    "$@"
  fi
}

on_workers() {  # on_workers all|0 COMMAND
  run "${gcloud_tpu[@]}" ssh "$tpu_name" "${where[@]}" --worker="$1" --command="$2"
}

created=0
cleanup() {
  local status=$?
  if ((created && !keep)); then
    run "${gcloud_tpu[@]}" delete "$tpu_name" "${where[@]}" --quiet
  elif ((created)); then
    echo "slice $tpu_name left running (--keep); delete it with: ${gcloud_tpu[*]} delete $tpu_name --zone=$zone --quiet" >&2
  fi
  exit "$status"
}
trap cleanup EXIT

create=("${gcloud_tpu[@]}" create "$tpu_name" "${where[@]}" --accelerator-type="$accelerator_type" --version="$runtime_version")
((!spot)) || create+=(--spot)
run "${create[@]}"
created=1

code_dir='~/ar3po_jax'
if [[ -n $repo ]]; then
  clone="rm -rf $code_dir && git clone --depth=1"
  [[ -z $branch ]] || clone+=" --branch=$(printf %q "$branch")"
  on_workers all "$clone $(printf %q "$repo") $code_dir"
else
  archive="/tmp/ar3po_jax_${tpu_name}.tgz"
  run tar -czf "$archive" -C "$root" --exclude=.git --exclude='.venv*' --exclude=.jax_cache --exclude=workdir --exclude=__pycache__ .
  run "${gcloud_tpu[@]}" scp "$archive" "$tpu_name:ar3po_jax.tgz" "${where[@]}" --worker=all
  on_workers all "rm -rf $code_dir && mkdir -p $code_dir && tar -xzf ~/ar3po_jax.tgz -C $code_dir"
fi

# The TPU VM images ship Python 3.10; the pinned requirements need 3.11.
on_workers all "sudo apt-get update -q && sudo apt-get install -y -q python3.11 python3.11-venv && python3.11 -m venv ~/venv && ~/venv/bin/pip install -q -r $code_dir/requirements.txt 'jax[tpu]==$jax_version'"

# Checkpoint and data on every worker's local disk: each process reads its own shards of the
# checkpoint, and every process reads the data sets.
stage() {  # stage SOURCE WORKER_FOLDER (relative to the workers' home)
  if [[ $1 == gs://* ]]; then
    on_workers all "rm -rf ~/$2 && mkdir -p ~/$2 && gcloud storage cp -r $(printf %q "${1%/}")/'*' ~/$2/"
  else
    on_workers all "rm -rf ~/$2"
    run "${gcloud_tpu[@]}" scp --recurse "${1%/}" "$tpu_name:$2" "${where[@]}" --worker=all
  fi
}
main_env=""
[[ -z $checkpoint ]] || stage "$checkpoint" ar3po_checkpoint
if [[ -n $data ]]; then
  stage "$data" ar3po_data
  main_env='AR3PO_DATA_ROOT=$HOME/ar3po_data '
fi

main_command="${main_env}~/venv/bin/python -m ar3po_jax.main --distributed --config=$(printf %q "$config") --workdir=$(printf %q "$workdir")"
[[ -z $checkpoint ]] || main_command+=' --config.model.checkpoint=$HOME/ar3po_checkpoint'
for a in "${main_args[@]+"${main_args[@]}"}"; do
  main_command+=" $(printf %q "$a")"
done
# Detached, so a dropped ssh connection does not stop the run; the exit status lands in a file.
on_workers all "cd $code_dir && rm -f ~/ar3po_run.rc && setsid nohup bash -c '$main_command; echo \$? > ~/ar3po_run.rc' > ~/ar3po_run.log 2>&1 < /dev/null &"
on_workers 0 "tail -n +1 -f ~/ar3po_run.log & while [ ! -f ~/ar3po_run.rc ]; do sleep 10; done; sleep 2; kill \$!; exit \$(cat ~/ar3po_run.rc)"
if [[ -n $results ]]; then
  on_workers 0 "gcloud storage cp -r $(printf %q "$workdir") $(printf %q "$results")"
fi
