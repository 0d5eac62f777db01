#!/usr/bin/env bash
# Two fine-tunes side by side on a lent GPU machine (this workplace's `device` tool), in one call.
# The machine cannot reach ../shared and a call carries at most 64 MiB, so the data travel as a
# packed copy in .gcarry/ (ignored through .git/info/exclude), made here beforehand:
#   python tools/pack_data.py ../shared/data/ccp .gcarry/ccp --labels labels_lip_sided:train --long-side 352 --quality 85
#   python tools/pack_data.py ../shared/data/viton/train .gcarry/viton --every 3
# and the ONNX files and docs/*.png moved out of the tree for the call (the checkpoint stays: it is
# the start). Run there with carry [".gcarry"]:  bash tools/gpu_train.sh
# Each run is stopped (SIGTERM: it writes its checkpoint and ends) if it is still going after
# GUARD seconds, so that the call ends inside its limit; the weights (no optimizer state, which
# would pass the 16 MiB a returned file may have) come back in $OUT as g1.pt and g2.pt.
# The second call of 2026-12-04: S1=123 S2=124 ITERS=3000 GUARD=215 bash tools/gpu_train.sh
# One longer run instead (g1 alone, the machine's 16 cores sampling for it): RUNS=1 WORKERS=14 ITERS=12000
# Here, to try the script: DEVICE=cpu ITERS=4 WORKERS=1 GUARD=60 OUT=/tmp/g PYTHON=python bash tools/gpu_train.sh
set -u
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda} ITERS=${ITERS:-7000} WORKERS=${WORKERS:-7} GUARD=${GUARD:-470} S1=${S1:-121} S2=${S2:-122}
INIT=${INIT:-weights/lipnet.pt} RUNS=${RUNS:-2}
P=${PYTHON:-python3}
T0=$(date +%s)
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $P -c "import torch,cv2,numpy;print('torch',torch.__version__,torch.cuda.is_available(),'cv2',cv2.__version__,'np',numpy.__version__)"
  nproc; grep -m1 'model name' /proc/cpuinfo; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
V=.gcarry/viton C=.gcarry/ccp:split=train:labels=labels_lip_sided
COMMON=(--iters "$ITERS" --batch 16 --lr 0.001 --lovasz 10 --grey 0.05 --empty 0.05 --decoder-stride 4
        --device "$DEVICE" --workers "$WORKERS" --threads 2 --ckpt-every 500 --init "$INIT")
# g1 (seed S1): the 50/50 mix at 0.7-1.2, VITON's rare classes drawn more often (repeat 0.3), 30% recoloured
$P -m lipparse_rt train --data $V:ratio=0.5:white:repeat=0.3 --data $C:ratio=0.5:repeat=0.3 \
  --out /tmp/g1 --seed "$S1" --scale 0.7,1.2 --recolour 0.3 "${COMMON[@]}" > "$OUT/g1.log" 2>&1 &
G1=$!
# g2 (seed S2): 75% CCP at 0.8-1.25, VITON at repeat 1.0, 50% recoloured
G2=
if [ "$RUNS" -ge 2 ]; then
  $P -m lipparse_rt train --data $V:ratio=0.25:white:repeat=1.0 --data $C:ratio=0.75:repeat=0.3 \
    --out /tmp/g2 --seed "$S2" --scale 0.8,1.25 --recolour 0.5 "${COMMON[@]}" > "$OUT/g2.log" 2>&1 &
  G2=$!
fi
alive() { kill -0 $G1 2>/dev/null || { [ -n "$G2" ] && kill -0 $G2 2>/dev/null; }; }
while alive; do
  if [ $(( $(date +%s) - T0 )) -ge "$GUARD" ]; then
    echo "guard: stopping at $(( $(date +%s) - T0 ))s"; kill -TERM $G1 $G2 2>/dev/null; break
  fi
  sleep 5
done
wait
for g in g1 ${G2:+g2}; do
  tail -3 "$OUT/$g.log"
  cp /tmp/$g/log.csv "$OUT/$g-log.csv" 2>/dev/null
  $P -c "
import torch
c = torch.load('/tmp/$g/last.pt', map_location='cpu', weights_only=False)
c.pop('optimizer', None)
torch.save(c, '$OUT/$g.pt')
print('$g: step', c['step'], 'bn', c.get('bn_recalibrated', 'no'))"
done
echo "done in $(( $(date +%s) - T0 ))s"
