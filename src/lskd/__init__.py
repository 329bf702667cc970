"""lskd: label smoothing x knowledge distillation, reproduced as one Snakemake DAG."""

__version__ = "0.1.0"
