#!/bin/bash
# Trains over several GPU nodes with SLURM: one process per GPU, all joined by
# jax.distributed (JAX reads SLURM's node list and task ids; see README,
# "Several devices and hosts").
#
#   sbatch --nodes=2 scripts/slurm_train.sh configs/beauty.py /shared/runs/beauty [--config.x=y ...]
#
# The workdir must be on a filesystem that every node sees. Re-submitting the
# same command resumes the run from its latest checkpoint.
#SBATCH --job-name=fame_jax
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
config=${1:?usage: sbatch --nodes=N scripts/slurm_train.sh CONFIG WORKDIR [overrides]}
workdir=${2:?usage: sbatch --nodes=N scripts/slurm_train.sh CONFIG WORKDIR [overrides]}
shift 2
cd "${SLURM_SUBMIT_DIR:-.}"
srun .venv/bin/python train.py --config "$config" --workdir "$workdir" \
    --config.train.progress=False "$@"
