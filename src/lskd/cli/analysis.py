"""`lskd` subcommands of the analysis stage: tables, projection figures, diffusion
metrics, claims and the benefit Δ(T) of a teacher's regularizer. Numpy/pandas/
matplotlib/scipy only: they start without importing torch. Every output file is a
named flag (`--csv`, `--md`, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lskd.cli.args import add_metrics_arg
from lskd.errors import DataError


def cmd_table(args: argparse.Namespace) -> None:
    from lskd.analysis.tables import write_table

    write_table(args.metrics, args.csv, args.md, args.tex, args.html)


def cmd_figure(args: argparse.Namespace) -> None:
    from lskd.analysis.figures import plot_projection_grid
    from lskd.analysis.panels import arrange

    layout = arrange(args.projections)
    plot_projection_grid(
        layout.grid,
        layout.rows,
        layout.columns,
        args.title,
        args.png,
        args.pdf,
        layout.chance,
    )


def cmd_claims(args: argparse.Namespace) -> None:
    from lskd.analysis.claims import claims_table

    claims_table(args.metrics, args.csv, args.md, args.html)


def cmd_diffusion_table(args: argparse.Namespace) -> None:
    from lskd.analysis.diffusion_table import write_diffusion_table

    write_diffusion_table(args.metrics, args.diffusion, args.csv, args.html, args.png)


def cmd_delta(args: argparse.Namespace) -> None:
    from lskd.analysis.delta import write_delta

    write_delta(
        args.metrics,
        args.csv,
        args.md,
        args.tex,
        args.html,
        args.png,
        summary_md=args.summary_md,
        summary_html_path=args.summary_html,
        diffusion_paths=args.diffusion,
        headline_path=args.headline_html,
    )


def cmd_curves(args: argparse.Namespace) -> None:
    from lskd.analysis.curves import plot_curves

    plot_curves(args.metrics, args.png, args.title)


def cmd_power(args: argparse.Namespace) -> None:
    import pandas as pd

    from lskd.analysis.delta import seed_power

    for path in args.delta_csv:
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read a Δ CSV ({err})") from None
        missing = {"n", "ci_low", "ci_high", "T"} - set(table.columns)
        if missing:
            raise DataError(f"{path}: not a Δ CSV (no column {sorted(missing)[0]!r})")
        print(f"{path} (95 % half-width target {args.half_width:g} points):")
        print(seed_power(table, args.half_width).to_string(index=False))


def cmd_delta_transfer(args: argparse.Namespace) -> None:
    from lskd.analysis.delta import write_transfer_interaction

    write_transfer_interaction(
        args.metrics, args.csv, args.md, args.tex, args.html, args.png
    )


def _table_outputs(p: argparse.ArgumentParser, what: str) -> None:
    """--csv, --md, --tex, --html (all required) and --png: a table and its figure."""
    for flag, text in (
        ("csv", "CSV (the numbers)"),
        ("md", "Markdown (caption first)"),
        ("tex", "LaTeX"),
        ("html", "HTML page (shown in the report)"),
    ):
        p.add_argument(f"--{flag}", type=Path, required=True, help=f"{what}: {text}")
    p.add_argument("--png", type=Path, required=True, help="output figure (PNG)")


def add_analysis_commands(sub) -> None:
    """Register the analysis subcommands on the `lskd` subparsers."""
    p = sub.add_parser("table", help="paper-layout table from metrics.json files")
    add_metrics_arg(p)
    p.add_argument("--csv", type=Path, required=True, help="output CSV")
    p.add_argument("--md", type=Path, required=True, help="output Markdown")
    p.add_argument("--tex", type=Path, required=True, help="output LaTeX")
    p.add_argument("--html", type=Path, help="output HTML page (shown in the report)")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser(
        "figure",
        help="grid of projections: rows (teacher, or students by T) x (teacher "
        "regularizer x {train, test})",
        description="Rows and columns come from the metrics.json beside each "
        "projection: columns are the teachers' regularizers (CE first), rows the "
        "teachers or the students by objective and T.",
    )
    p.add_argument(
        "projections",
        type=Path,
        nargs="+",
        help="projection.npz files, each in its run directory beside the run's "
        "metrics.json, which places it (any order)",
    )
    p.add_argument("--title", required=True, help="figure title")
    p.add_argument("--png", type=Path, required=True, help="output PNG")
    p.add_argument("--pdf", type=Path, required=True, help="output PDF")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("claims", help="the paper's claims checked on one table's runs")
    p.add_argument("metrics", type=Path, nargs="+", help="metrics.json of the runs")
    for ext in ("csv", "md", "html"):
        p.add_argument(f"--{ext}", type=Path, required=ext != "html", help=f"{ext} out")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser(
        "diffusion-table",
        help="diffusion metrics across teacher regularizer, student objective and T",
    )
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
        help="the benefit Δ(T) of each teacher regularizer over CE, per student "
        "objective, of one teacher → student pair, paired by seed",
        description="Δ(T) = student top-1 with each non-CE teacher minus with the CE "
        "teacher, same objective and T, paired by seed, with its 95 % Student-t "
        "interval: table, figure (one panel per objective; the paper's Δ(T) beside "
        "LS + KD) and a generated summary.",
    )
    add_metrics_arg(p)
    p.add_argument(
        "--diffusion",
        type=Path,
        nargs="*",
        default=[],
        help="diffusion.json files of some of those runs (matched by run directory)",
    )
    _table_outputs(p, "the Δ table")
    p.add_argument(
        "--summary-md",
        type=Path,
        required=True,
        help="the generated summary (Markdown)",
    )
    p.add_argument(
        "--summary-html",
        type=Path,
        required=True,
        help="the generated summary (an HTML fragment the report embeds)",
    )
    p.add_argument(
        "--headline-html",
        type=Path,
        required=True,
        help="one sentence per regularizer and objective above the embedded figure "
        "(the HTML fragment the report opens with)",
    )
    p.set_defaults(func=cmd_delta)

    p = sub.add_parser(
        "curves",
        help="training curves of a pair's runs (loss, validation top-1 per epoch)",
    )
    add_metrics_arg(p)
    p.add_argument("--png", type=Path, required=True, help="output figure (PNG)")
    p.add_argument("--title", help="figure title (default: task and teacher arch)")
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser(
        "power",
        help="paired seeds a study needs for a 95 %% half-width of Δ, from a pilot's "
        "Δ CSV",
    )
    p.add_argument("delta_csv", type=Path, nargs="+", help="*_delta.csv of a pilot")
    p.add_argument(
        "--half-width",
        type=float,
        default=0.4,
        help="target 95 %% half-width in top-1 points (default 0.4)",
    )
    p.set_defaults(func=cmd_power)

    p = sub.add_parser(
        "delta-transfer",
        help="Δ(T) per KD transfer-set size and its difference from the largest",
        description="Δ(T) for each transfer-set size of one pair (students' "
        "'transfer' record; teachers shared) and, per regularizer, objective and T, "
        "Δ_size(T) − Δ_all(T) (or against the largest size), paired by seed, with "
        "95 % intervals.",
    )
    add_metrics_arg(p)
    _table_outputs(p, "the table")
    p.set_defaults(func=cmd_delta_transfer)
