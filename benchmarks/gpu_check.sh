#!/usr/bin/env bash
# The GPU measurement in one script, for a machine with a CUDA GPU and phanet's dependencies installed
# (run from the repository root; nothing is installed). Writes everything under OUT (default
# runs/gpu_check): the training-throughput table at the paper's 224 px (PhaNet in 32 bits and with its
# backbones in bfloat16) and the demo's 96/48 px, the same without channels_last and with torch.compile
# while the budget lasts, and a 30-epoch demo-preset training with its evaluation, wall time and time
# to accuracy. Budget: about 8 minutes on one H200-class GPU.
#
#   bash benchmarks/gpu_check.sh                 # OUT=runs/gpu_check
#   OUT=/tmp/check bash benchmarks/gpu_check.sh
#   DEVICE=cpu QUICK=1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh   # tiny, to try it on a CPU
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-}:src
export PHANET_CACHE=${PHANET_CACHE:-$OUT/cache}
ACCEL=$([ "$DEVICE" = cuda ] && echo gpu || echo cpu)
if [ -n "${QUICK:-}" ]; then
  SMALL=(--small); STEPS=(--steps 4 --warmup 2); SUBJECTS=(); EPOCHS=2; WORKERS=0
  DEMO=("data.options={preset: bu3dfe, subjects: 6, size: 32}" data.split.val=1 data.split.test=2
        model.image_size=32 model.input_size=null model.backbone.depth=10 model.backbone.growth_rate=6)
else
  SMALL=(); STEPS=(--steps 40 --warmup 10); SUBJECTS=(--subjects 30 data.split.val=2 data.split.test=2)
  EPOCHS=30; WORKERS=8; DEMO=()
fi
log() { echo "== $(date +%H:%M:%S) $*" | tee -a "$OUT/summary.txt"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  "$PY" -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'lightning', lightning.__version__)"
  nproc; } > "$OUT/machine.txt" 2>&1

T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }

log "paper preset (224 px): precision x batch"
timeout 200 "$PY" benchmarks/train_throughput.py --config paper --device "$DEVICE" --batch 32,128 \
  --precision 32-true,bf16-backbones --repeats 2 --workers "$WORKERS" "${SUBJECTS[@]}" "${STEPS[@]}" "${SMALL[@]}" \
  2>&1 | grep -v -i warn | tee "$OUT/paper.txt"

log "demo preset: $EPOCHS epochs of training, then evaluation"
start=$(date +%s)
timeout 200 "$PY" -m phanet train --config demo "train.epochs=$EPOCHS" "data.num_workers=$WORKERS" \
  --accelerator "$ACCEL" --no-progress --out "$OUT/demo_run" "${DEMO[@]}" > "$OUT/demo_train.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s (rendering and caching included)" | tee -a "$OUT/summary.txt"
tail -3 "$OUT/demo_train.log" | tee -a "$OUT/summary.txt"
timeout 30 "$PY" benchmarks/time_to_accuracy.py "$OUT/demo_run" 2>&1 | grep -v -i warn | tee -a "$OUT/summary.txt"
timeout 60 "$PY" -m phanet evaluate --checkpoint "$OUT/demo_run/checkpoints/best.ckpt" --device "$DEVICE" \
  --out "$OUT/demo_eval" 2>&1 | tail -6 | tee -a "$OUT/summary.txt"

log "demo preset (96 px in, 48 px network): batch 32"
timeout 90 "$PY" benchmarks/train_throughput.py --config demo --device "$DEVICE" --workers "$WORKERS" \
  --repeats 2 "${STEPS[@]}" "${SMALL[@]}" 2>&1 | grep -v -i warn | tee "$OUT/demo.txt"

# Optional variants, while the 8-minute budget lasts: each compiles the network twice (two fits).
for variant in "train.channels_last=false" "train.compile=default" "train.compile=reduce-overhead"; do
  if [ "$(elapsed)" -gt 330 ]; then log "skipped $variant (budget)"; continue; fi
  log "paper preset, batch 128, 32-true: $variant"
  timeout 120 "$PY" benchmarks/train_throughput.py --config paper --device "$DEVICE" --batch 128 \
    --precision 32-true --repeats 1 --workers "$WORKERS" "${SUBJECTS[@]}" "${STEPS[@]}" "${SMALL[@]}" "$variant" \
    2>&1 | grep -v -i warn | sed "s/^/[$variant] /" | tee -a "$OUT/paper_variants.txt"
done
rm -rf "$OUT/cache" "$OUT"/demo_run/checkpoints
log "done after $(elapsed) s"
