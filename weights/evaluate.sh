#!/usr/bin/env bash
# Score the shipped float weights (the model card's tables; `--int8` for the CPU default): CCP val (ccp protocol,
# sided 20-class), VITON test; plain and flip TTA.
set -euo pipefail
mkdir -p runs/eval
D=../shared/data
lipparse-rt eval --float --data $D/ccp --split val --labels labels_lip --protocol ccp --confusion docs/confusion-ccp.png > runs/eval/ccp.md
lipparse-rt eval --float --data $D/ccp --split val --labels labels_lip_sided --protocol lip --confusion docs/confusion-ccp-sided.png > runs/eval/ccp_sided.md
lipparse-rt eval --float --data $D/viton/test --protocol lip --confusion docs/confusion-viton.png > runs/eval/viton.md
lipparse-rt eval --float --data $D/ccp --split val --labels labels_lip --protocol ccp --flip > runs/eval/ccp_flip.md
lipparse-rt eval --float --data $D/viton/test --protocol lip --flip > runs/eval/viton_flip.md
lipparse-rt eval --float --data $D/ccp --split val --labels labels_lip_sided --protocol lip --flip > runs/eval/ccp_sided_flip.md
# frames of the street clip with nobody in them (checked by eye on a contact sheet of every 6th frame)
lipparse-rt eval --float --empty $D/videos/one-by-one-person-detection.mp4 --frames 0-50,210-225,455-495,710-740,880-920 > runs/eval/empty_room.md
# the scikit-image pictures with nobody in them (needs scikit-image; also renders docs/empty-parsed.png)
python demos/make_demo.py --empty runs/eval/empty-pictures > /dev/null
lipparse-rt eval --float --empty runs/eval/empty-pictures > runs/eval/empty_pictures.md
