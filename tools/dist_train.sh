#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NPROC [train.py args...]
# Environment (as mmseg's): NNODES, NODE_RANK, MASTER_ADDR, PORT; PYTHON picks the interpreter.
# Without CUDA the processes train on CPU with the gloo backend.
# Several nodes: run it on each with NNODES=N, NODE_RANK=0..N-1, the same MASTER_ADDR (node 0's
# address) and PORT; node 0 hosts torchrun's (static) rendezvous (tests/tools/
# test_multinode_train.py). Only global rank 0 writes logs and checkpoints: nodes may share a
# --work-dir. On CPU, mmengine gathers validation results through files in ./.dist_test, so
# separate machines need the current directory on a shared file system to validate.
set -euo pipefail
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
