"""The thread budget, applied to a worker before any numerical library is imported."""

from __future__ import annotations

# Read once at library start-up, so they must be in the worker's environment from the beginning.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "MATMUL_NUM_THREADS",  # matrixmultiply with its threading feature (the plain Rust ports)
)


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment variables for a worker; an empty dict keeps every library's own default."""
    if threads is None:
        return {}
    return dict.fromkeys(THREAD_ENV_VARS, str(threads))
