"""How each reported file appears in the Snakemake report (`snakemake --report`): its
caption (workflow/report/*.rst), category, subcategory and labels, by kind of file.

Labels are wildcard patterns, filled in per job. The report sorts categories, and
labelled items inside one, by name with JavaScript's localeCompare (snakemake 9.27,
report/html_reporter/template/components/menu.js and abstract_results.js): digits sort
before letters, so the Δ(T) category comes first, its items labelled 1 answer,
2 summary, 3 table, 4 figure; the answers (a sentence per method above the figure) open
the landing page, the summaries follow below them (workflow/report/workflow.rst).
"""

from __future__ import annotations

from typing import Any

from lskd.plan.paths import fill

DELTA_CATEGORY = "1. Teacher regularizer benefit Δ(T)"
PAIR = {"pair": "{tarch} → {sarch}", "transfer": "{xfer}"}
NMT_RUN = {"pair": "{pair}", "alpha": "{alpha}"}
# kind -> caption (workflow/report/<caption>.rst), category, subcategory, labels
ITEMS = {
    "teacher": (
        "metrics",
        "Runs",
        "Teachers",
        {"task": "{task}", "arch": "{tarch}", "teacher": "{reg}", "seed": "{tseed}"},
    ),
    "student": (
        "metrics",
        "Runs",
        "Students",
        {"task": "{task}", "arch": "{tarch} → {sarch}", "transfer": "{xfer}"}
        | {"teacher": "{reg}", "objective": "{obj}", "T": "{T}", "seed": "{seed}"},
    ),
    "table": ("table", "Tables", "{task}", {"task": "{task}"} | PAIR),
    "claims": ("claims", "Claims", "{task}", {"task": "{task}"} | PAIR),
    "diffusion": ("diffusion", "Diffusion", "{task}", PAIR),
    "curves": ("curves", "Training curves", "{task}", PAIR),
    "delta": ("delta", DELTA_CATEGORY, "{task}", PAIR),
    "transfer": (
        "transfer",
        DELTA_CATEGORY,
        "{task}: transfer-set size",
        {"pair": PAIR["pair"]},
    ),
    "figure": (
        "figure",
        "Figures",
        "{task}",
        {"teacher": "{tarch}", "panel": "{panel}"},
    ),
    "nmt_table": ("nmt_table", "NMT", "Table 5", {"table": "Table 5"}),
    "nmt_headline": ("nmt_table", "NMT", "Table 5", {"table": "Table 5: the answer"}),
    "nmt_curves": (
        "nmt_curves",
        "NMT",
        "Table 5",
        {"table": "validation loss per update"},
    ),
    "nmt_splits": ("nmt_splits", "NMT", "{pair}", {"pair": "{pair}", "run": "splits"}),
    "nmt_teacher": ("nmt_run", "NMT", "{pair}", NMT_RUN | {"run": "teacher"}),
    "nmt_student": ("nmt_run", "NMT", "{pair}", NMT_RUN | {"run": "student T={T}"}),
}


def _file_labels(kind: str, path: str) -> dict[str, str]:
    """Labels that tell apart the files of one job: table or figure, the Δ items."""
    if kind in ("diffusion", "transfer"):
        return {"kind": "figure" if path.endswith(".png") else "table"}
    if kind == "delta":
        if "_headline" in path:
            return {"item": "1 answer"}
        if "_summary" in path:
            return {"item": "2 summary"}
        return {"item": "3 table" if path.endswith("_delta.html") else "4 figure"}
    return {}


def report_item(kind: str, path: str, **values: object) -> dict[str, Any]:
    """The keyword arguments of Snakemake's ``report(path, ...)`` for a file of `kind`
    (`ITEMS`): a run's metrics.json (`teacher`, `student`, `nmt_teacher`,
    `nmt_student`), a table or figure of a pair (`table`, `claims`, `diffusion`,
    `delta`, `transfer`, `figure`), Table 5 or an NMT pair's splits. `values` fill
    label wildcards the path does not have (the T of each student of a fused sweep)."""
    if kind not in ITEMS:
        raise ValueError(f"{kind!r}: not a kind of reported file")
    caption, category, subcategory, labels = ITEMS[kind]
    labels = labels | _file_labels(kind, path)
    return {
        "caption": f"../report/{caption}.rst",
        "category": category,
        "subcategory": subcategory,
        "labels": {k: fill(v, **values) for k, v in labels.items()},
    }
