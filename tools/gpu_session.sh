#!/usr/bin/env bash
# One call on a lent GPU machine (this workplace's `device` tool): GPU speed of the shipped graph
# (`lipparse-rt bench gpu`), then two training runs side by side on the GPU from weights/lipnet.pt,
# stopped by a deadline if they run long; logs and slim checkpoints (A.pt, B.pt) go to $OUT.
#
# Before the call, here: pack the data into the git-ignored carry/ (see tools/pack_data.py's
# header) and add carry/lrt.py, a CLI entry with a __main__ guard (spawned sampling processes
# re-import the main module):
#   printf 'from lipparse_rt.cli import run\n\nif __name__ == "__main__":\n    run()\n' > carry/lrt.py
# The repo and carry/ together must stay under 64 MiB: move weights/lipnet.onnx and docs/*.png
# out of the tree for the call (this script needs neither) and put them back after it.
# The call: `ITERS=6000 TRAIN_END=480 bash tools/gpu_session.sh`, carry ["carry"], timeout 560.
# On an H200 one iteration (batch 16, 256x256) took 0.047 s with two runs side by side, so
# 6,000 iterations each fit in ~330 s. SKIP_BENCH=1 skips the benchmark, SEED and GREY vary run B.
# BatchNorm is not re-estimated there by default (BN_BATCHES=0: its samples are drawn in the
# training process, device minutes for little): do it here afterwards, with the training data,
# `lipparse-rt average A.pt --out A-bn.pt --bn-data ...` (or average A.pt B.pt: a soup).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD OMP_NUM_THREADS=2
T0=$(date +%s)
L="python3 carry/lrt.py"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
  python3 -c "import torch,onnxruntime as o,cv2,numpy;print('torch',torch.__version__,torch.cuda.is_available(),'ort',o.__version__,o.get_available_providers(),'cv2',cv2.__version__,'np',numpy.__version__)"
  nproc; grep -m1 'model name' /proc/cpuinfo; du -sh . carry weights
} > $OUT/env.txt 2>&1
cat $OUT/env.txt
[ -n "${SKIP_BENCH:-}" ] || timeout 150 $L bench gpu --runs 5 > $OUT/bench.md 2>&1; echo "bench rc=$? at $(( $(date +%s) - T0 ))s"
cat $OUT/bench.md
DATA="--data carry/viton:ratio=0.5:white --data carry/ccp:split=train:labels=labels_lip_sided:ratio=0.5:repeat=0.3"
COMMON="--lr 0.001 --ckpt-every 500 --init weights/lipnet.pt --device cuda --threads 2 --batch 16 --lovasz 10
 --val carry/ccp:split=val:labels=labels_lip --val-every 1000 --iters ${ITERS:-6000} --seed ${SEED:-11} --workers 6
 --bn-batches ${BN_BATCHES:-0}"
$L train $DATA $COMMON --out /tmp/A > $OUT/A.log 2>&1 & PA=$!
$L train $DATA $COMMON --out /tmp/B --grey ${GREY:-0.1} > $OUT/B.log 2>&1 & PB=$!
DEADLINE=$(( T0 + ${TRAIN_END:-480} ))
while kill -0 $PA 2>/dev/null || kill -0 $PB 2>/dev/null; do
  if [ $(date +%s) -ge $DEADLINE ]; then echo "deadline: stopping"; kill -TERM $PA $PB 2>/dev/null; wait; break; fi
  sleep 5
done
wait
echo "training ended at $(( $(date +%s) - T0 ))s"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
for r in A B; do
  tail -4 $OUT/$r.log; cat /tmp/$r/log.csv; cp /tmp/$r/log.csv $OUT/$r.csv
  python3 -c "
import torch,sys; c=torch.load('/tmp/$r/last.pt',map_location='cpu',weights_only=False)
keep=('model','config','train_config','class_weights','step','iterations','bn_recalibrated')
torch.save({k:c[k] for k in keep if k in c}, '$OUT/$r.pt'); print('$r step', c['step'], 'iterations', c.get('iterations'))"
done
echo "all done at $(( $(date +%s) - T0 ))s"
