#!/usr/bin/env bash
# Score the shipped weights: CCP val (ccp protocol, sided 20-class), VITON test; plain and flip TTA.
set -euo pipefail
mkdir -p runs/eval
D=../shared/data
lipparse-rt eval --data $D/ccp --split val --labels labels_lip --protocol ccp --confusion docs/confusion-ccp.png > runs/eval/ccp.md
lipparse-rt eval --data $D/ccp --split val --labels labels_lip_sided --protocol lip --confusion docs/confusion-ccp-sided.png > runs/eval/ccp_sided.md
lipparse-rt eval --data $D/viton/test --protocol lip --confusion docs/confusion-viton.png > runs/eval/viton.md
lipparse-rt eval --data $D/ccp --split val --labels labels_lip --protocol ccp --flip > runs/eval/ccp_flip.md
lipparse-rt eval --data $D/viton/test --protocol lip --flip > runs/eval/viton_flip.md
lipparse-rt eval --data $D/ccp --split val --labels labels_lip_sided --protocol lip --flip > runs/eval/ccp_sided_flip.md
