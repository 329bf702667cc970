"""`lskd` subcommands of the analysis stage: projections, tables, figures, diffusion
metrics, claims and the LS benefit Δ(T). Numpy/pandas/matplotlib/scipy only: they start
without importing torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from lskd.cli.args import add_delta_flags, add_metrics_arg
from lskd.errors import ConfigError


def cmd_project(args: argparse.Namespace) -> None:
    from lskd.analysis.projection import project_file

    project_file(args.penultimate, args.out)


def cmd_table(args: argparse.Namespace) -> None:
    from lskd.analysis.tables import write_table

    write_table(args.metrics, args.csv, args.md, args.tex, args.html)


def cmd_figure(args: argparse.Namespace) -> None:
    from lskd.analysis.figures import plot_projection_grid
    from lskd.analysis.panels import arrange

    grid = arrange(args.projections, args.rows, args.alphas)
    plot_projection_grid(grid, args.rows, args.alphas, args.title, args.png, args.pdf)


def cmd_diffusion(args: argparse.Namespace) -> None:
    from lskd.analysis.diffusion import diffusion_file

    diffusion_file(args.projection, args.out)


def cmd_claims(args: argparse.Namespace) -> None:
    from lskd.analysis.claims import claims_table

    claims_table(args.metrics, args.csv, args.md, args.html)


def cmd_diffusion_table(args: argparse.Namespace) -> None:
    from lskd.analysis.diffusion_table import write_diffusion_table

    write_diffusion_table(args.metrics, args.diffusion, args.csv, args.html, args.png)


# `--out` files of `lskd delta` / `delta-transfer`, told apart by their endings
# (longest first: `_summary.md` before `.md`).
DELTA_OUT = {
    "summary_md": "_summary.md",
    "summary_html": "_summary.html",
    "csv": ".csv",
    "md": ".md",
    "tex": ".tex",
    "html": ".html",
    "png": ".png",
}
TRANSFER_OUT = {k: v for k, v in DELTA_OUT.items() if not k.startswith("summary")}


def outputs_by_ending(paths: list[Path], endings: dict[str, str]) -> dict[str, Path]:
    """``{name: path}`` for the paths by their endings: each ending exactly once."""
    found: dict[str, Path] = {}
    for path in paths:
        name = next((k for k, end in endings.items() if path.name.endswith(end)), None)
        if name is None:
            raise ConfigError(
                f"--out {path}: ends in none of {', '.join(endings.values())}"
            )
        if name in found:
            raise ConfigError(f"--out {path}: a second *{endings[name]} file")
        found[name] = path
    missing = [end for k, end in endings.items() if k not in found]
    if missing:
        raise ConfigError(f"--out: no file ending in {', '.join(missing)}")
    return found


def cmd_delta(args: argparse.Namespace) -> None:
    from lskd.analysis.delta_summary import write_delta

    out = outputs_by_ending(args.out, DELTA_OUT)
    write_delta(
        args.metrics,
        *(out[k] for k in ("csv", "md", "tex", "html", "png")),
        summary_md=out["summary_md"],
        summary_html_path=out["summary_html"],
        diffusion_paths=args.diffusion,
    )


def cmd_delta_transfer(args: argparse.Namespace) -> None:
    from lskd.analysis.delta_transfer import write_transfer_interaction

    out = outputs_by_ending(args.out, TRANSFER_OUT)
    write_transfer_interaction(args.metrics, *(out[k] for k in TRANSFER_OUT))


def add_analysis_commands(sub) -> None:
    """Register the analysis subcommands on the `lskd` subparsers."""
    p = sub.add_parser("project", help="project penultimate features (Algorithm 1)")
    p.add_argument("penultimate", type=Path, help="penultimate.npz from `lskd extract`")
    p.add_argument("out", type=Path, help="output projection.npz")
    p.set_defaults(func=cmd_project)

    p = sub.add_parser("table", help="paper-layout table from metrics.json files")
    add_metrics_arg(p)
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
        help="projection.npz files, each in its run directory beside the run's "
        "metrics.json, which places it (any order)",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        required=True,
        help="row labels naming their runs: 'teacher' or 'T = <T>', e.g. 'T = 1'",
    )
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
        "--diffusion",
        type=Path,
        nargs="+",
        required=True,
        help="diffusion.json of those runs (joined by run directory, any order)",
    )
    for ext in ("csv", "html", "png"):
        p.add_argument(f"--{ext}", type=Path, required=True, help=f"output {ext}")
    p.set_defaults(func=cmd_diffusion_table)

    p = sub.add_parser(
        "delta",
        help="the LS benefit Δ(T) of one teacher → student pair, paired by seed",
        description="Δ(T) = student top-1 with each alpha > 0 teacher minus with the "
        "alpha = 0 teacher, paired by seed, with its 95 % Student-t interval: table, "
        "figure (with the paper's Δ(T)) and a generated summary.",
    )
    add_delta_flags(p, summary=True)
    p.set_defaults(func=cmd_delta)

    p = sub.add_parser(
        "delta-transfer",
        help="Δ(T) per KD transfer-set size and its difference from the largest",
        description="Δ(T) for each transfer-set size of one pair (students' "
        "'transfer' record; teachers shared) and, per T, Δ_size(T) − Δ_all(T) "
        "(or against the largest size), paired by seed, with 95 % intervals.",
    )
    add_delta_flags(p, summary=False)
    p.set_defaults(func=cmd_delta_transfer)
