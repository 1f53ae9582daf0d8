#!/usr/bin/env bash
# Colorize one folder across 8 Slurm array tasks: each task takes its own shard of the files (colorize reads
# SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT itself: --shard auto is the default), all write to one output folder,
# and a rerun of the array skips what is done.
#
#   sbatch examples/slurm_array.sh /archive/box-12 /archive/box-12_colorized
#
#SBATCH --job-name=colorize
#SBATCH --array=1-8
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=colorize-%A_%a.out
# For GPU nodes add:  #SBATCH --gres=gpu:1
set -euo pipefail
IN=${1:?usage: sbatch slurm_array.sh INPUT_DIR OUTPUT_DIR}
OUT=${2:?usage: sbatch slurm_array.sh INPUT_DIR OUTPUT_DIR}
mkdir -p "$OUT"
exec colorize dir "$IN" -o "$OUT" --recursive --workers "${SLURM_CPUS_PER_TASK:-2}" \
    --report "$OUT/report-${SLURM_ARRAY_TASK_ID}.json" --log "$OUT/colorize.log"
