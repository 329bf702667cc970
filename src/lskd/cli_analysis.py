"""`lskd` subcommands of the analysis stage: projections, tables, figures, diffusion
metrics and claims. Numpy/pandas/matplotlib only: they start without importing torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from lskd.errors import ConfigError


def cmd_project(args: argparse.Namespace) -> None:
    from lskd.analysis.projection import project_file

    project_file(args.penultimate, args.out)


def cmd_table(args: argparse.Namespace) -> None:
    from lskd.analysis.tables import write_table

    write_table(args.metrics, args.csv, args.md, args.tex, args.html)


def cmd_figure(args: argparse.Namespace) -> None:
    from lskd.analysis.figures import plot_projection_grid

    n = len(args.alphas)
    if len(args.projections) != len(args.rows) * n:
        raise ConfigError(
            f"figure: {len(args.projections)} projections for "
            f"{len(args.rows)} rows x {n} alphas"
        )
    grid = [args.projections[r * n : (r + 1) * n] for r in range(len(args.rows))]
    plot_projection_grid(grid, args.rows, args.alphas, args.title, args.png, args.pdf)


def cmd_diffusion(args: argparse.Namespace) -> None:
    from lskd.analysis.diffusion import diffusion_file

    diffusion_file(args.projection, args.out, penultimate_npz=args.penultimate)


def cmd_claims(args: argparse.Namespace) -> None:
    from lskd.analysis.claims import claims_table

    claims_table(args.metrics, args.csv, args.md, args.html)


def cmd_diffusion_table(args: argparse.Namespace) -> None:
    from lskd.analysis.diffusion_table import write_diffusion_table

    write_diffusion_table(args.metrics, args.diffusion, args.csv, args.html, args.png)


def add_analysis_commands(sub) -> None:
    """Register the analysis subcommands on the `lskd` subparsers."""
    p = sub.add_parser("project", help="project penultimate features (PAPER.md §5.2)")
    p.add_argument("penultimate", type=Path, help="penultimate.npz from `lskd extract`")
    p.add_argument("out", type=Path, help="output projection.npz")
    p.set_defaults(func=cmd_project)

    p = sub.add_parser("table", help="paper-layout table from metrics.json files")
    p.add_argument(
        "metrics", type=Path, nargs="+", help="metrics.json of teachers and students"
    )
    p.add_argument("--csv", type=Path, required=True, help="output CSV")
    p.add_argument("--md", type=Path, required=True, help="output Markdown")
    p.add_argument("--tex", type=Path, required=True, help="output LaTeX")
    p.add_argument("--html", type=Path, help="output HTML page (shown in the report)")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser(
        "figure", help="grid of projections: rows x (alpha x {train, test})"
    )
    p.add_argument(
        "projections",
        type=Path,
        nargs="+",
        help="projection.npz files, row-major: row r, alpha a at r*len(alphas)+a",
    )
    p.add_argument("--rows", nargs="+", required=True, help="row labels, e.g. 'T = 1'")
    p.add_argument(
        "--alphas", type=float, nargs="+", required=True, help="column alphas"
    )
    p.add_argument("--title", required=True, help="figure title")
    p.add_argument("--png", type=Path, required=True, help="output PNG")
    p.add_argument("--pdf", type=Path, required=True, help="output PDF")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("diffusion", help="our diffusion metrics of one projection")
    p.add_argument("projection", type=Path, help="projection.npz from `lskd project`")
    p.add_argument("out", type=Path, help="output diffusion.json")
    p.add_argument(
        "--penultimate",
        type=Path,
        help="the run's penultimate.npz: adds the reconstructed stability metric",
    )
    p.set_defaults(func=cmd_diffusion)

    p = sub.add_parser("claims", help="the paper's claims checked on one table's runs")
    p.add_argument("metrics", type=Path, nargs="+", help="metrics.json of the runs")
    for ext in ("csv", "md", "html"):
        p.add_argument(f"--{ext}", type=Path, required=ext != "html", help=f"{ext} out")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("diffusion-table", help="diffusion metrics across alpha x T")
    p.add_argument(
        "--metrics", type=Path, nargs="+", required=True, help="metrics.json"
    )
    p.add_argument(
        "--diffusion", type=Path, nargs="+", required=True, help="same order"
    )
    for ext in ("csv", "html", "png"):
        p.add_argument(f"--{ext}", type=Path, required=True, help=f"output {ext}")
    p.set_defaults(func=cmd_diffusion_table)
