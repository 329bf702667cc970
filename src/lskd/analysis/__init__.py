"""Analysis of finished runs: penultimate-layer projections, result tables, figures."""
