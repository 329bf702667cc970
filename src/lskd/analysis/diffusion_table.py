"""Our diffusion metrics across alpha x T for one teacher -> student pair: a table and a
figure (metric vs T, one line per teacher alpha; the teachers as dashed levels).

Each row joins a run's metrics.json (role, alpha, T, seed) with its diffusion.json (the
metrics of `lskd.analysis.diffusion`, on the training points of the projection). These
are lskd's own numbers, not the paper's (PAPER.md §5.4).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from lskd.analysis.diffusion import flat_metrics
from lskd.analysis.tables import read_metrics, to_html
from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)
COLUMNS = (
    "separation",
    "anisotropy_0",
    "anisotropy_1",
    "spread_0",
    "spread_1",
    "stability_rec_train",
    "stability_rec_test",
)
PLOTTED = {  # column -> panel title
    "separation": "separation (classes 0, 1)",
    "anisotropy_0": "anisotropy (class 0)",
    "anisotropy_1": "anisotropy (class 1)",
    "stability_rec_train": "stability, reconstructed (train)",
}


def build_rows(metrics_paths: Sequence[Path], diffusion_paths: Sequence[Path]):
    """One row per run: identity from metrics.json, numbers from diffusion.json."""
    if len(metrics_paths) != len(diffusion_paths):
        raise DataError("diffusion table: metrics and diffusion files must pair up")
    rows = []
    for mpath, dpath in zip(metrics_paths, diffusion_paths, strict=True):
        m = read_metrics(Path(mpath))
        try:
            flat = flat_metrics(json.loads(Path(dpath).read_text()))
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{dpath}: not a diffusion.json ({err})") from None
        row = {"role": m["role"], "alpha": m["alpha"], "T": m["T"], "seed": m["seed"]}
        rows.append(row | {k: flat[k] for k in COLUMNS})
    table = pd.DataFrame(rows)
    group = ["role", "alpha", "T"]
    mean = table.groupby(group, dropna=False)[list(COLUMNS)].mean()
    mean["n"] = table.groupby(group, dropna=False).size()
    return mean.reset_index().sort_values(["role", "alpha", "T"], na_position="first")


def plot(table: pd.DataFrame, title: str, out_png: Path) -> None:
    fig = Figure(figsize=(4.2 * len(PLOTTED), 3.4), layout="constrained")
    axes = fig.subplots(1, len(PLOTTED))
    students = table[table["role"] == "student"]
    teachers = table[table["role"] == "teacher"]
    for ax, name in zip(axes, PLOTTED, strict=True):
        for i, (alpha, rows) in enumerate(students.groupby("alpha")):
            colour = f"C{i}"
            ax.plot(rows["T"], rows[name], "o-", color=colour, label=f"α = {alpha:g}")
            level = teachers.loc[teachers["alpha"] == alpha, name]
            if len(level):
                ax.axhline(level.iloc[0], color=colour, ls="--", lw=1)
        ax.set_xscale("log", base=2)
        temps = sorted(students["T"].unique())
        ax.set_xticks(temps, [f"{T:g}" for T in temps])
        ax.minorticks_off()
        ax.set_xlabel("KD temperature T")
        ax.set_title(PLOTTED[name], fontsize=10)
    axes[0].legend(title="students; teacher dashed", fontsize=8)
    fig.suptitle(title, fontsize=10)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_diffusion_table(
    metrics_paths: Sequence[Path],
    diffusion_paths: Sequence[Path],
    out_csv: Path,
    out_html: Path,
    out_png: Path,
) -> pd.DataFrame:
    table = build_rows(metrics_paths, diffusion_paths)
    runs = [read_metrics(Path(p)) for p in metrics_paths]
    student = next((r["arch"] for r in runs if r["role"] == "student"), "-")
    teacher = next((r["arch"] for r in runs if r["role"] == "teacher"), "-")
    title = f"{runs[0]['task']}: {teacher} teachers -> {student} students"
    caption = (
        f"{title}: lskd's diffusion metrics (ours, not the paper's) of the projected "
        "training features, mean over seeds (n): separation of the two similar classes "
        "(centroid distance / pooled std) and per-class anisotropy and spread; "
        "stability_rec_<split> is the RECONSTRUCTED Shen et al. stability of the "
        "softmax outputs (formula not found, PAPER.md §6; lskd.analysis.stability)."
    )
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_html) as tmp:
        tmp.write_text(to_html(table.set_index(["role", "alpha", "T"]), caption))
    plot(table, title, out_png)
    log.info("wrote %s, %s, %s", out_csv, out_html, out_png)
    return table
