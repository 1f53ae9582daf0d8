#!/usr/bin/env bash
# One lent-GPU check for issue 21, at most 6 minutes on an H200: the CUDA tests, `colorize dir` throughput against
# the I/O-only rates, `colorize video` frames/s on 854x480 film, fp16 against fp32 colour. Every figure goes to
# OUTDIR/gpu.md (and the full log to OUTDIR/gpu.log).
#
#   benchmarks/gpu.sh [OUTDIR]                 # on the GPU machine: OUTDIR defaults to $OUT, else benchmarks/gpu-out
#   benchmarks/gpu.sh --cpu-dry-run [OUTDIR]   # the same steps on the CPU with a few images and frames (a check of
#                                              # the script itself, here; its figures mean nothing)
#
# A lent machine reaches nothing but the working tree: photos come from examples/originals, the film is
# ../shared/data/video/davis-blackswan.mp4 when present, else a 854x480 pan across an example photo. imageio-ffmpeg
# is not in the GPU image: carry its wheel in .whl/ (see /work/.library/device/README.md), installed below if there.
set -u -o pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda IMAGES=240 FRAMES=240 PRECISION_IMAGES=6 WORKERS=8 TESTS=tests/test_cuda.py
if [ "${1:-}" = "--cpu-dry-run" ]; then
    DEVICE=cpu IMAGES=8 FRAMES=12 PRECISION_IMAGES=2 WORKERS=2
    shift
fi
OUTDIR=${1:-${OUT:-benchmarks/gpu-out}}
mkdir -p "$OUTDIR"
MD=$OUTDIR/gpu.md LOG=$OUTDIR/gpu.log
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
step() {   # step TITLE SECONDS COMMAND...: run it under a time limit, its output to the log and the figures file
    local title=$1 limit=$2
    shift 2
    echo "## $title" | tee -a "$LOG" >>"$MD"
    echo '`'"$*"'`' >>"$MD"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG" | grep -E '^\||passed|failed|skipped|frames/s|error' >>"$MD"
    echo "(exit ${PIPESTATUS[0]}, $((SECONDS - t0)) s)" | tee -a "$LOG" >>"$MD"
    echo >>"$MD"
}
{
    echo "# benchmarks/gpu.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE"
    $PY -c 'import os, platform, torch; print(platform.processor() or platform.machine(), os.cpu_count(), "cores, torch",
torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'
    echo
} >"$MD"
: >"$LOG"

step "CUDA tests" 110 $PY -m pytest -q -x -p no:cacheprovider $TESTS
step "colorize dir against the one-core I/O loop and the identity-model pipeline (1 MP gray JPEGs)" 100 \
    $PY benchmarks/io_limit.py --device "$DEVICE" --photos examples/originals --images "$IMAGES" \
    --workers "$WORKERS" --batch-size 32 --variants "--workers $WORKERS --batch-size 32"
CLIP=../shared/data/video/davis-blackswan.mp4
if [ ! -f "$CLIP" ]; then
    CLIP=$WORK/pan.mp4
    $PY -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from _common import pan_clip
pan_clip(Path('examples/originals/1880Paris.jpg'), Path('$CLIP'), $FRAMES)" >>"$LOG" 2>&1
fi
step "colorize video, 854x480, defaults (x264 medium)" 45 \
    $PY -m colorize_cli.cli video "$CLIP" -o "$WORK/out.mp4" --device "$DEVICE" --overwrite
step "colorize video, 854x480, --preset veryfast" 35 \
    $PY -m colorize_cli.cli video "$CLIP" -o "$WORK/fast.mp4" --device "$DEVICE" --overwrite --preset veryfast
step "fp16 / bf16 against fp32 (CIEDE2000 of the merged outputs)" 45 \
    $PY benchmarks/precision.py --device "$DEVICE" --photos examples/originals --images "$PRECISION_IMAGES"
cat "$MD"
