#!/usr/bin/env bash
# The GPU session: the library backends on a CUDA device, next to their CPU selves and NumPy.
#
#   HARNESS_DATA_DIR=… benchmarks/gpu_session.sh RESULTS_DIR [WHEELS_DIR]
#
# Runs on a machine whose python3 has CUDA builds of PyTorch and JAX. The project's other
# dependencies that are missing there come as wheels in WHEELS_DIR, installed without the network;
# the project itself is installed editable with no dependencies, so its entry points exist.
# Keras is left out: TensorFlow's GPU build is not on such machines here. Prints the backends,
# verifies the two GPU backends against the float64 reference, then runs the matrix.
set -euo pipefail
results=$1
wheels=${2:-}
if [ -n "$wheels" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$wheels"/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -m harness list
python3 -m harness verify --backend torch-cuda --backend jax-gpu --steps 100
python3 -m harness run --backend torch-cuda --backend jax-gpu --backend torch --backend jax \
    --backend numpy --threads 1 --repeats 3 --results-dir "$results"
