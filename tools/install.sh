#!/usr/bin/env bash
# Install one of the two stacks CI tests into a project-local virtualenv, in the order that
# works (docs/STACK.md): build tools, torch, mmcv built with its ops against that torch, then
# the OpenMMLab packages and this package. Idempotent: when nothing it depends on changed and
# the stack imports, a second run returns in seconds.
#
#   STACK=main     torch 2.13.0 (the CPU wheel this machine kind holds), numpy < 2.3, the onnx,
#                  openvino and crf extras
#   STACK=torch21  torch 2.1.2 + numpy < 2: what OpenMMLab's prebuilt mmcv 2.1.0 wheels serve on
#                  GPUs (the index wheel is a CUDA build; it imports and runs on CPU)
#
# Usage: [STACK=main|torch21] tools/install.sh [VENV_DIR]   (PYTHON selects the interpreter;
#        TORCH_INDEX_URL, e.g. https://download.pytorch.org/whl/cpu, the index torch comes from:
#        without it, pip's configured index, which on PyPI serves CUDA builds of torch for Linux)
set -euo pipefail

cd "$(dirname "$0")/.."
STACK=${STACK:-main}
PYTHON=${PYTHON:-python3}
CONSTRAINTS=requirements/constraints.txt
case "$STACK" in
    main)
        VENV=${1:-.venv}
        TORCH_SPEC=torch==2.13.0          # the CPU wheel this machine kind holds on disk
        STACK_CONSTRAINTS=$CONSTRAINTS
        # the optional extras, tested
        EXTRAS=(-r requirements/onnx.txt -r requirements/openvino.txt -r requirements/crf.txt)
        # pip's default cache: a second install reuses the mmcv wheel built against this torch
        MMCV_CACHE=()
        ;;
    torch21)
        VENV=${1:-.venv-torch21}
        TORCH_SPEC=torch==2.1.2
        STACK_CONSTRAINTS=requirements/constraints-torch21.txt
        # ONNX export and OpenVINO must work on torch 2.1 too: tested there
        EXTRAS=(-r requirements/onnx.txt -r requirements/openvino.txt)
        # pip keys its wheel cache by the mmcv sdist, not by torch: a wheel built against the
        # main stack's torch would be reused here and fail to load its ops. Own cache dir.
        MMCV_CACHE=(--cache-dir "${XDG_CACHE_HOME:-$HOME/.cache}/pip-mmcv-torch21")
        ;;
    *)
        echo "tools/install.sh: STACK=$STACK is not one of: main, torch21" >&2
        exit 2
        ;;
esac
STAMP="$VENV/.mmseg_hrplus-install"

# pip noise that is expected here: this machine's pip config names local index folders that
# may not exist, and torch's own requirement setuptools>=77 conflicts with the pin that mmcv's
# build needs (torch does not use setuptools at run time).
pip_quiet() {
    "$@" 2> >(grep -vE "^WARNING: Location|dependency resolver does not currently|requires setuptools>=|^ERROR: pip's dependency" >&2)
}

log() { printf '[install %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

fingerprint() {
    cat tools/install.sh requirements/*.txt setup.py | sha256sum | cut -d' ' -f1
    echo "$STACK $TORCH_SPEC"
}

check_stack() {
    "$VENV/bin/python" - <<'PY'
import mmcv, mmdet, mmengine, mmseg, torch
from mmcv.ops import RoIAlign, batched_nms  # noqa: F401  compiled ops must exist
import importlib.util, os
spec = importlib.util.find_spec('mmseg_hrplus')  # installed (editable) from this checkout
assert spec is not None and spec.origin.startswith(os.getcwd()), spec
print(f'torch {torch.__version__}, mmcv {mmcv.__version__} (ops ok), mmengine '
      f'{mmengine.__version__}, mmseg {mmseg.__version__}, mmdet {mmdet.__version__}')
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]] && check_stack 2>/dev/null; then
    log "up to date ($VENV)"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtualenv $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=(pip_quiet "$VENV/bin/python" -m pip --disable-pip-version-check)

log "build tools (pip, setuptools<70 for mmcv's pkg_resources, wheel, ninja)"
"${PIP[@]}" install -q -U pip wheel ninja
TORCH_INDEX=()
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    TORCH_INDEX=(--index-url "$TORCH_INDEX_URL")
fi
log "torch ($TORCH_SPEC, stack $STACK${TORCH_INDEX_URL:+, from $TORCH_INDEX_URL})"
"${PIP[@]}" install -q "${TORCH_INDEX[@]}" "$TORCH_SPEC"
# torch pulls a new setuptools; mmcv's setup.py still imports pkg_resources, gone in >=70.
"${PIP[@]}" install -q -c "$STACK_CONSTRAINTS" "setuptools<70" numpy

if "$VENV/bin/python" -c 'from mmcv.ops import RoIAlign, batched_nms' 2>/dev/null; then
    log "mmcv with compiled ops already present"
else
    log "mmcv 2.1.0 with compiled ops: a fresh build compiles 77 C++ files, 10-20 min on 2 cores;"
    log "pip's wheel cache makes later installs take seconds. Progress every 60 s below."
    build_log=$(mktemp)
    # -g0: no debug info for the ops (the Python build flags ask for -g), a shorter compile.
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} CFLAGS="${CFLAGS:-} -g0" \
        "$VENV/bin/python" -m pip install -v --no-build-isolation \
        "${MMCV_CACHE[@]}" -c "$STACK_CONSTRAINTS" mmcv==2.1.0 >"$build_log" 2>&1 &
    pip_pid=$!
    start=$SECONDS
    while kill -0 "$pip_pid" 2>/dev/null; do
        sleep 60
        step=$(grep -oE '\[[0-9]+/[0-9]+\]' "$build_log" | tail -n 1 || true)
        log "  mmcv: $(( (SECONDS - start) / 60 )) min, compile step ${step:-(preparing)}"
    done
    if ! wait "$pip_pid"; then
        tail -n 40 "$build_log"
        log "mmcv build FAILED (full log: $build_log)"
        exit 1
    fi
    rm -f "$build_log"
fi

log "mmengine, mmsegmentation, mmdet, test tools"
"${PIP[@]}" install -q -c "$STACK_CONSTRAINTS" mmengine==0.10.7 mmsegmentation==1.2.2 mmdet==3.3.0 \
    -r requirements/tests.txt "${EXTRAS[@]}" ftfy regex
log "openmim without its dependencies (requirements/mim.txt says why)"
"${PIP[@]}" install -q --no-deps -c "$STACK_CONSTRAINTS" -r requirements/mim.txt
log "mmseg_hrplus (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

if ! check_stack; then
    log "FAILED: the stack does not import (mmcv.ops RoIAlign/batched_nms are required)"
    exit 1
fi
fingerprint >"$STAMP"
log "done"
