"""The numpy-fused backend for mlp-bench."""
