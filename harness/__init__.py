"""mlp-bench: run one MLP training job through pluggable backends and compare them fairly."""

__version__ = "0.1.0"
