#!/usr/bin/env bash
# One prepared run of the benchmarks on a machine with a CUDA GPU (and, for comparison, its CPU).
#
#   bench/gpu_run.sh                      # on the GPU machine, from the repository root
#   PY=.venv/bin/python NO_WHEELS=1 DEVICES=cpu QUICK=1 bench/gpu_run.sh   # a dry run here
#
# Optional inputs beside the repository (ignored by git): .whl/ (Python 3.12 wheels the GPU
# machine lacks), .gpudata/fashion_mnist/ (IDX files; DATA_DIR), .gpusnap/tree.tar (a known-good
# tree to run instead of the working copy). Everything it measures is bundled into
# $OUT/gpu_results.tgz (logs and reports/*.json); the summary is printed last.
set -u
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu-out}
DEVICES=${DEVICES:-"cuda cpu"}
QUICK=${QUICK:-0}
ROOT=$(pwd)
WORK=/tmp/gpu-work
mkdir -p "$OUT" "$WORK"
T0=$(date +%s)

if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
SRC=$ROOT
if [ -f .gpusnap/tree.tar ]; then
    rm -rf /tmp/snap && mkdir -p /tmp/snap && tar -xf .gpusnap/tree.tar -C /tmp/snap && SRC=/tmp/snap
fi
cd "$SRC" || exit 1
export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH}
export STATE_DIR=${STATE_DIR:-/tmp/gpu-state} LOG_LEVEL=warning PYTHONUNBUFFERED=1
export ARTIFACTS_DIR=$STATE_DIR/artifacts ARTIFACT_IMPORT_ROOTS=/tmp
[ -d "$ROOT/.gpudata" ] && export DATA_DIR=$ROOT/.gpudata
mkdir -p reports

if [ "$QUICK" = 1 ]; then REQ=200; BARE=200; REQ_BIG=100; else REQ=1500; BARE=2000; REQ_BIG=600; fi
TRAIN=${TRAIN_LIMIT:-10000}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $WORK/NAME.log
    local name=$1 limit=$2
    shift 2
    local start=$(date +%s)
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    echo "=== $name: rc=$rc in $(($(date +%s) - start))s (t=$(($(date +%s) - T0))s)"
    [ $rc = 0 ] || tail -n 8 "$WORK/$name.log"
}

{
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    nproc
    "$PY" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
} >"$WORK/info.log" 2>&1
cat "$WORK/info.log"

step unit_device 120 "$PY" -m pytest -q -p no:cacheprovider tests/unit/test_ml_device.py
step migrate 120 "$PY" -m cli migrate
for dev in $DEVICES; do
    export DEVICE=$dev
    # mnist_cnn first: trains (on DEVICE) and promotes a short version if there is none.
    step "predict_mnist_$dev" 240 "$PY" -m bench.bench_predict --arch mnist_cnn --train_limit $TRAIN --requests $REQ \
        --bare_iters $BARE --out "reports/gpu_bench_predict_mnist_cnn_$dev.json"
    step "batch_mnist_$dev" 150 "$PY" -m bench.bench_batch --arch mnist_cnn --train_limit $TRAIN \
        --out "reports/gpu_bench_batch_mnist_cnn_$dev.json"
done
for dev in $DEVICES; do
    export DEVICE=$dev
    step "predict_resnet18_$dev" 240 "$PY" -m bench.bench_predict --arch resnet18 --train_limit $TRAIN --requests $REQ_BIG \
        --bare_iters 300 --no_v2 --out "reports/gpu_bench_predict_resnet18_$dev.json"
    step "batch_resnet18_$dev" 150 "$PY" -m bench.bench_batch --arch resnet18 --train_limit $TRAIN \
        --out "reports/gpu_bench_batch_resnet18_$dev.json"
done
# API_WORKERS scaling on this machine's cores, mnist_cnn on the CPU, enough load for 8 processes.
export DEVICE=cpu
step scaling_cpu 200 "$PY" -m bench.bench_predict --model_name mnist_cnn --workers ${SCALING_WORKERS:-2 4 8} \
    --concurrency 64 --requests $REQ --bare_iters $BARE --no_v2 \
    --out reports/gpu_bench_predict_scaling_cpu.json
for dev in $DEVICES; do
    export DEVICE=$dev
    step "profile_$dev" 90 "$PY" -m bench.profile_predict --seconds 5 \
        --out "reports/gpu_profile_predict_$dev.json"
done

cp reports/gpu_*.json "$WORK"/ 2>/dev/null
tar -czf "$OUT/gpu_results.tgz" -C "$WORK" .
"$PY" -m bench.gpu_summary "$WORK"
"$PY" -m cli down >/dev/null 2>&1
echo "total $(($(date +%s) - T0))s"
