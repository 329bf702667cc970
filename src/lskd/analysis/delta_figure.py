"""Figures of the LS benefit Δ(T) (``lskd.analysis.delta``): Δ against T with its
intervals and the paper's own Δ(T) (Chandrasegaran et al. 2022, Tables 2 and 4, from
the shipped ``paper_numbers.csv``) as labelled reference lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lskd.analysis.delta import BASE_ALPHA, DeltaRow
from lskd.analysis.diffusion_table import jitter
from lskd.analysis.formats import PNG_DPI
from lskd.analysis.paper import load_paper_numbers
from lskd.analysis.records import format_alpha
from lskd.analysis.stats import Estimate
from lskd.atomic import atomic_path

TASK_NAMES = {"imagenet": "ImageNet", "cub200": "CUB"}
ARCH_NAMES = {
    "resnet18": "R18",
    "resnet50": "R50",
    "mobilenet_v2": "MBv2",
    "efficientnet_b0": "EffB0",
}


@dataclass(frozen=True)
class PaperDelta:
    """The paper's Δ(T) of one setting, from ``paper_numbers.csv``."""

    label: str
    temps: tuple[float, ...]
    deltas: tuple[float, ...]


def _short(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def paper_deltas() -> list[PaperDelta]:
    """Student top-1 with the alpha = 0.1 teacher minus with the alpha = 0 teacher,
    per T, for every image setting of the shipped paper numbers (Chandrasegaran et
    al. 2022, Tables 2 and 4), labelled ``paper <table>, <task> <teacher>→<student>``.
    """
    numbers = load_paper_numbers()
    students = numbers[(numbers["role"] == "student") & numbers["top1"].notna()]
    out = []
    keys = ["section", "task", "teacher_arch", "student_arch"]
    for (_, task, tarch, sarch), group in students.groupby(keys, sort=True):
        by = group.pivot_table(index="T", columns="alpha", values="top1")
        ls = [a for a in by.columns if a > BASE_ALPHA]
        if BASE_ALPHA not in by.columns or len(ls) != 1:
            continue
        delta = (by[ls[0]] - by[BASE_ALPHA]).dropna()
        table = group["paper_table"].iloc[0].split(" / ")[0]
        label = (
            f"paper {table}, {TASK_NAMES.get(task, task)} "
            f"{_short(tarch)}→{_short(sarch)}"
        )
        out.append(
            PaperDelta(label, tuple(map(float, delta.index)), tuple(delta.to_numpy()))
        )
    return out


def _yerr(ests: Sequence[Estimate]) -> np.ndarray:
    low = [e.mean - e.low if e.has_interval else 0.0 for e in ests]
    high = [e.high - e.mean if e.has_interval else 0.0 for e in ests]
    return np.array([low, high])


def temperature_axis(ax, temps: Sequence[float]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(temps), [f"{T:g}" for T in temps])
    ax.minorticks_off()
    ax.set_xlabel("KD temperature T (log scale)")
    ax.axhline(0.0, color="black", lw=0.8)


def plot_series(
    ax, rows: Sequence[DeltaRow], i: int, k: int, label: str, **style
) -> None:
    """One series of Δ(T) (its rows with paired seeds) in colour ``C{i}``, at slot i
    of k beside T, with 95 % error bars; ``style``: further ``errorbar`` options."""
    mine = [r for r in rows if r.delta.n]
    ests = [r.delta for r in mine]
    ax.errorbar(
        jitter([r.T for r in mine], i, k),
        [e.mean for e in ests],
        yerr=_yerr(ests),
        fmt="o-",
        color=f"C{i}",
        label=label,
        **style,
    )


def save_png(fig: Figure, out_png: Path) -> None:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI)


def plot_delta(
    rows: Sequence[DeltaRow], title: str, out_png: Path, paper: bool = True
) -> None:
    """Δ against T with error bars (95 % interval), the zero line and the paper's Δ(T)
    as labelled dashed reference lines."""
    fig = Figure(figsize=(8.4, 4.4), layout="constrained")
    ax = fig.subplots()
    references = paper_deltas() if paper else []
    for j, ref in enumerate(references):
        ax.plot(
            ref.temps,
            ref.deltas,
            ls="--",
            marker=".",
            lw=1,
            color=f"C{j + 3}",
            alpha=0.75,
            label=ref.label,
        )
    alphas = sorted({r.alpha for r in rows})
    for i, alpha in enumerate(alphas):
        mine = [r for r in rows if r.alpha == alpha]
        label = f"this run, {format_alpha(alpha)} vs 0"
        plot_series(ax, mine, i, len(alphas), label, lw=2, capsize=4)
    temps = sorted({r.T for r in rows} | {T for ref in references for T in ref.temps})
    temperature_axis(ax, temps)
    ax.set_ylabel("Δ top-1 (points)")
    handles, labels = ax.get_legend_handles_labels()
    first = len(references)  # this run's series first, then the paper's lines
    ax.legend(
        handles[first:] + handles[:first],
        labels[first:] + labels[:first],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    fig.suptitle(
        f"{title}\nΔ(T) = student top-1 with the LS teacher − with the alpha = 0 "
        "teacher; error bars: 95 % interval of paired seed differences",
        fontsize=9,
    )
    save_png(fig, out_png)
