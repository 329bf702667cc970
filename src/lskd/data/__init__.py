"""Datasets: raw readers (one module per dataset) and the in-memory batch iterator."""

# Datasets read into in-memory arrays (`lskd.data.arrays`, a prepared `.npz`); every
# other dataset is a manifest of image files (`lskd.data.manifest`, a `.json`).
ARRAY_DATASETS = ("fashion_mnist", "cifar100", "cifar10")
