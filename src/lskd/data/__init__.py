"""Datasets: raw readers (one module per dataset) and the in-memory batch iterator."""
