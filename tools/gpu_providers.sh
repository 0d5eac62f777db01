#!/usr/bin/env bash
# The app's own ONNX Runtime GPU providers on a lent GPU machine (this workplace's `device` tool),
# in two calls: the machine has no onnxruntime-gpu and one call carries at most 64 MiB.
#
# Before the calls, here (the .gpu1 and .gpu2 folders are ignored through .git/info/exclude):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d /tmp/whl onnxruntime-gpu==1.31.1 av==18.1.0
#   python tools/slim_ort.py /tmp/whl/onnxruntime_gpu-*.whl /tmp/ort.tar.xz   # sm_90 kernels only
#   split -b 29M /tmp/ort.tar.xz /tmp/ort.part.    # .part.aa -> .gpu1, the rest -> .gpu2
#   .gpu1: the av wheel, ort.part.aa and a 640x480 clip (yes.mkv: bench gpu compares fp16's ids on
#   its first frame with fp32's); .gpu2: the other parts, the clip again and, if it fits,
#   street.mp4 (one-by-one-person-detection.mp4, 3.3 MB: `video`, `--zoom` and `--flip` on a long clip)
# Call 1 (`bash tools/gpu_providers.sh 1`, carry [".gpu1"]) with weights/*.pt, *.onnx and
# docs/*.png moved out of the tree; call 2 (`... 2`, carry [".gpu2"]) with weights/lipnet.onnx
# back, at once after the first (the machine stays warm 30 s, and keeps /tmp meanwhile).
set -u
export PYTHONUNBUFFERED=1
T0=$(date +%s)
L="python3 -m lipparse_rt.cli"
if [ "$1" = 1 ]; then
  mkdir -p /tmp/site /tmp/ortparts
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu1/*.whl
  cp .gpu1/ort.part.* /tmp/ortparts/ 2>/dev/null  # none when the call only runs bench gpu
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch,cv2,numpy;print('torch',torch.__version__,torch.cuda.is_available(),'cv2',cv2.__version__,'np',numpy.__version__)"
    nproc; grep -m1 'model name' /proc/cpuinfo
  } > $OUT/env.txt 2>&1
  cat $OUT/env.txt
  [ -n "${SKIP_TORCH:-}" ] || PYTHONPATH=/tmp/site:$PWD timeout 240 $L bench gpu --runs 5 --video .gpu1/yes.mkv > $OUT/bench-gpu.md 2>&1; echo "bench gpu rc=$?"
  cat $OUT/bench-gpu.md
  echo "stage 1 done in $(( $(date +%s) - T0 ))s"
  exit 0
fi
cat /tmp/ortparts/ort.part.* .gpu2/ort.part.* | tar xJ -C /tmp/site || exit 1
SP=$(python3 -c "import os,torch;print(os.path.dirname(os.path.dirname(torch.__file__)))")
ln -sfn "$SP/nvidia" /tmp/site/nvidia  # as `pip install onnxruntime-gpu[cuda,cudnn]` leaves them
export PYTHONPATH=/tmp/site:$PWD
ls "$SP/nvidia" "$SP"/nvidia/*/lib 2>&1 | head -30
CLIP=.gpu2/yes.mkv
{
  echo "== a bare session, no preload (what the engine did before preload_gpu_libraries)"
  python3 -c "
import onnxruntime as o; o.set_default_logger_severity(4)
s=o.InferenceSession('weights/lipnet.onnx', providers=['CUDAExecutionProvider','CPUExecutionProvider']); print(o.__version__, s.get_providers())"
  echo "== the app: info, then video on the default provider (auto)"
  $L info 2>&1 | tail -5
  timeout 120 $L video demos/astronaut.mp4 --out $OUT/astronaut-gpu.mp4 2>&1 | tail -4
  timeout 120 $L video $CLIP --out /tmp/yes-gpu.mp4 2>&1 | tail -4
  echo "== start-up with the check of the GPU's scores against the CPU's (info makes one engine)"
  /usr/bin/time -f "info: %e s, %M KB" $L info > /dev/null
  if [ -f .gpu2/street.mp4 ]; then  # a long clip (the street clip of ../shared/data/videos), plain and --zoom
    # --flip: would a GPU's headroom pay for flip TTA by default (+1.9 mIoU on CCP val on the CPU)?
    for z in "" --zoom --flip; do timeout 200 $L video .gpu2/street.mp4 --out /tmp/street.mp4 --force $z 2>&1 | tail -2; done
  fi
} > $OUT/app.txt 2>&1
cat $OUT/app.txt; echo "app checks at $(( $(date +%s) - T0 ))s"
timeout 200 $L bench providers --video $CLIP > $OUT/providers.md 2>&1; echo "providers rc=$? at $(( $(date +%s) - T0 ))s"
cat $OUT/providers.md
timeout 200 $L bench pipeline --provider cuda --video $CLIP > $OUT/pipeline-cuda.md 2>&1; echo "pipeline rc=$? at $(( $(date +%s) - T0 ))s"
cat $OUT/pipeline-cuda.md
