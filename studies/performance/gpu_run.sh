#!/usr/bin/env bash
# The device run of gpu_suite.py: installs jax[cuda12] and the package into a fresh venv when the
# machine's Python has no GPU JAX, then runs the suite within a time budget, writing JSON to $1.
# Usage: bash studies/performance/gpu_run.sh OUT_DIR [BUDGET_S]
set -u
out=${1:?output directory}; budget=${2:-400}; start=$(date +%s)
mkdir -p "$out"
nvidia-smi -L || true
python3 -V
py=python3
if ! python3 -c "import jax, numpyro, arviz, optax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" 2>/dev/null; then
  python3 -m venv /tmp/gpu-venv && . /tmp/gpu-venv/bin/activate && py=python
  timeout 300 pip install -q "jax[cuda12]==0.10.2" "numpyro==0.22.0" "arviz==0.23.4" "optax>=0.2" "matplotlib>=3.7" "tqdm>=4.60" \
    || echo "pip install failed with status $?"
  pip install -q --no-deps -e . || echo "pip install -e . failed"
fi
$py -c "import jax; print('jax', jax.__version__, jax.devices())"
left=$(( budget - ($(date +%s) - start) ))
echo "install took $(( $(date +%s) - start )) s; suite budget ${left} s"
PYTHONPATH=$PWD $py studies/performance/gpu_suite.py --budget-s "$left" --json "$out/gpu_suite_gpu.json"
