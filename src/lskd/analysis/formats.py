"""The files of one table: CSV, Markdown (caption first), LaTeX (escaped, with its
label) and a small self-contained HTML page, each written atomically. Shared by every
table lskd writes (results, claims, diffusion, Δ(T), NMT). Figures:
`lskd.analysis.plots`."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from lskd.atomic import atomic_path

_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"\ensuremath{\pm}",
    "–": "--",
    "→": r"\ensuremath{\rightarrow}",
    "α": r"\ensuremath{\alpha}",
    "β": r"\ensuremath{\beta}",
    "λ": r"\ensuremath{\lambda}",
    "²": r"\textsuperscript{2}",
    "·": r"\ensuremath{\cdot}",
    "§": r"\S{}",
    "Δ": r"\ensuremath{\Delta}",
    "−": r"\ensuremath{-}",
    "√": r"\ensuremath{\surd}",
    "†": r"\textdagger{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters; map ±, –, →, α, β, λ, ², ·, §, Δ, −, √, † to
    LaTeX."""
    return "".join(_LATEX.get(char, char) for char in text)


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """``table`` inside a ``table`` environment with an escaped ``\\caption``."""
    tex = table.reset_index().map(lambda v: latex_escape(str(v)))
    tex.columns = [latex_escape(str(c).replace("alpha", "α")) for c in tex.columns]
    return tex.to_latex(
        index=False,
        escape=False,
        caption=latex_escape(caption),
        label=label,
        position="htbp",
        column_format="l" + "c" * (len(tex.columns) - 1),
    )


def to_html(table: pd.DataFrame, caption: str) -> str:
    """A small self-contained HTML page (what the Snakemake report shows inline)."""
    body = table.to_html(border=0, classes="lskd-table", na_rep="–")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>'
        "body{font-family:sans-serif;font-size:14px}"
        "table{border-collapse:collapse}"
        "th,td{padding:4px 10px;border-bottom:1px solid #ccc}"
        f"</style></head><body><p>{html.escape(caption)}</p>\n{body}\n</body></html>\n"
    )


def write_table_files(
    table: pd.DataFrame,
    caption: str,
    label: str,
    out_csv: Path,
    out_md: Path,
    out_tex: Path,
    out_html: Path | None = None,
    csv_table: pd.DataFrame | None = None,
) -> None:
    """Write one table as CSV, Markdown (caption first), LaTeX (``label``) and,
    optionally, HTML; each file atomically. ``csv_table`` (e.g. the numbers behind
    formatted cells) replaces ``table`` in the CSV, written without its index."""
    texts = {
        Path(out_md): f"{caption}\n\n{table.to_markdown(disable_numparse=True)}\n",
        Path(out_tex): to_latex(table, caption, label),
    }
    if out_html is not None:
        texts[Path(out_html)] = to_html(table, caption)
    with atomic_path(Path(out_csv)) as tmp:
        if csv_table is None:
            table.to_csv(tmp)
        else:
            csv_table.to_csv(tmp, index=False)
    for dest, text in texts.items():
        with atomic_path(dest) as tmp:
            tmp.write_text(text, encoding="utf-8")
