"""The experiment grid of a validated workflow config (docs/recipes.md#experiment-grid):
which runs exist, which files each aggregating rule reads, and the final targets.

Every regularizer and objective is its path token (`lskd.identity.Choice.token`,
`objective_token`), every temperature its path token (`lskd.spelling.path_token`),
every transfer set its size token (`lskd.data.transfer`), every seed a string: the
spellings of paths and wildcards. Lists of runs are patterns of the wildcards the rule
keeps (`{task}`, `{tarch}`, ...), filled in for the grid's regularizers, objectives,
seeds and temperatures. A wildcard spelled by the grid maps back to its `Choice`
through the grid's own tables (`regularizer`, `objective`), never by parsing.
The order of a list is the workflow's, stable from one plan to the next, but no command
depends on it: each reads its runs' identity from their files
(docs/outputs.md#what-is-computed-exactly).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from lskd.data import ARRAY_DATASETS
from lskd.data.transfer import size_tokens
from lskd.identity import Choice, objective_token
from lskd.plan.checks import grid_methods
from lskd.plan.inits import init_path
from lskd.plan.paths import (
    CLAIMS,
    CURVES_FIGURE,
    DATASET,
    DELTA,
    DELTA_FIGURE,
    DIFFUSION,
    DIFFUSION_FIGURE,
    METRICS,
    NMT_STUDENT,
    NMT_STUDENT_NAME,
    NMT_TEACHER,
    PROJECTION,
    PROJECTIONS,
    RESULTS,
    STUDENT,
    STUDENT_NAME,
    SUBSET,
    TABLE,
    TABLE5,
    TEACHER,
    TEACHERS_PANEL,
    TRANSFER,
    TRANSFER_FIGURE,
    fill,
    panel,
    split_panel,
)
from lskd.spelling import path_token

TABLE_FORMATS = ("csv", "md", "tex", "html")
CLAIMS_FORMATS = ("csv", "md", "html")
# The outputs of `lskd delta` by its flag names (`--summary-md` is key `summary_md`).
DELTA_FILES = {
    **{ext: f"{DELTA}.{ext}" for ext in ("csv", "md", "tex", "html")},
    **{f"summary_{ext}": f"{DELTA}_summary.{ext}" for ext in ("md", "html")},
    "headline_html": f"{DELTA}_headline.html",
    "png": DELTA_FIGURE,
}


class Grid:
    """The runs of one config: its tasks that run (`run.tasks`), teacher regularizers,
    student objectives, temperatures, seeds, architectures and transfer sets, and the
    NMT study's pairs and seeds."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.run = run = config["run"]
        self.tasks = {name: config["tasks"][name] for name in run["tasks"]}
        regularizers, objectives = grid_methods(run)
        self.regularizers = {c.token: c for c in regularizers}  # path token -> Choice
        self.objectives = {objective_token(c): c for c in objectives}
        self.regs, self.objs = list(self.regularizers), list(self.objectives)
        self.temps = [path_token(T) for T in run["temperatures"]]
        self.seeds = [str(s) for s in run["seeds"]]
        self.archs = sorted(
            {
                a
                for t in self.tasks.values()
                for a in t["teacher_archs"] + t["student_archs"]
            }
        )
        self.xfers = {
            name: size_tokens(t["student"]["transfer"], name)
            for name, t in self.tasks.items()
        }
        nmt = self.nmt = config["nmt"]
        self.nmt_task = nmt["task"]
        self.nmt_pairs = nmt["pairs"]
        only = nmt["student_pairs"]  # null: every pair
        self.nmt_student_pairs = [p for p in nmt["pairs"] if only is None or p in only]
        seeds = nmt["seeds"] if nmt["seeds"] is not None else run["seeds"]
        self.nmt_seeds = [str(s) for s in seeds]
        # NMT teachers (fairseq's label-smoothed CE) run the ce and ls regularizers.
        self.nmt_alphas = [
            path_token(c.alpha) for c in regularizers if c.alpha is not None
        ]

    def regularizer(self, wildcards: Mapping[str, str]) -> Choice:
        """The teacher regularizer of a job's `reg` wildcard."""
        return self.regularizers[wildcards["reg"]]

    def objective(self, wildcards: Mapping[str, str]) -> Choice:
        """The student objective of a job's `obj` wildcard."""
        return self.objectives[wildcards["obj"]]

    # ---- the runs ----

    def teacher_runs(self, names: tuple[str, ...] | list[str]) -> list[str]:
        """`names` in every teacher of one (task, tarch): patterns of those two."""
        return [
            f"{fill(TEACHER, reg=r, tseed=s)}/{name}"
            for r in self.regs
            for s in self.seeds
            for name in names
        ]

    def student_runs(self, names: tuple[str, ...] | list[str]) -> list[str]:
        """`names` in every student of one (task, tarch, sarch, xfer): every
        regularizer, seed, objective and T, each student distilled from the teacher of
        its seed."""
        return [
            f"{fill(STUDENT, reg=r, tseed=s, obj=o, T=T, seed=s)}/{name}"
            for r in self.regs
            for s in self.seeds
            for o in self.objs
            for T in self.temps
            for name in names
        ]

    def pair_runs(self, wildcards: Mapping[str, str], name: str) -> list[str]:
        """`name` of the teachers and students of one pair's tables (wildcards task,
        tarch, sarch, xfer)."""
        w = dict(wildcards.items())
        runs = self.teacher_runs([name]) + self.student_runs([name])
        return [p.format(**w) for p in runs]

    def delta_diffusion(self, wildcards: Mapping[str, str]) -> list[str]:
        """The diffusion.json files the Δ table shows beside Δ: the pair's runs where
        the task draws the penultimate figures, none otherwise."""
        if not self.tasks[wildcards["task"]]["penultimate"]["enabled"]:
            return []
        return self.pair_runs(wildcards, DIFFUSION)

    def transfer_runs(self, wildcards: Mapping[str, str]) -> list[str]:
        """metrics.json of one arch pair's teachers and of its students on every
        transfer set (wildcards task, tarch, sarch), sorted."""
        w = dict(wildcards.items())
        runs = {
            path
            for xfer in self.xfers[w["task"]]
            for path in self.pair_runs(w | {"xfer": xfer}, METRICS)
        }
        return sorted(runs)

    def row_temps(self, task: str) -> list[str]:
        """Temperatures of the projection figures' student rows (`penultimate`)."""
        temps = (
            self.tasks[task]["penultimate"]["temperatures"] or self.run["temperatures"]
        )
        return [path_token(T) for T in temps]

    def projections(self, wildcards: Mapping[str, str]) -> list[str]:
        """projection.npz of the first seed's runs in one figure (wildcards task,
        tarch, panel): every regularizer's teacher, or the students of the panel at
        each of the figure's temperatures, distilled with the first objective."""
        w = dict(wildcards.items())
        seed = self.seeds[0]
        w = {"task": w["task"], "tarch": w["tarch"], "tseed": seed, "seed": seed}
        if wildcards["panel"] == TEACHERS_PANEL:
            return [f"{TEACHER.format(**w, reg=r)}/{PROJECTION}" for r in self.regs]
        sarch, xfer = split_panel(wildcards["panel"])
        w |= {"sarch": sarch, "xfer": xfer, "obj": self.objs[0]}
        return [
            f"{STUDENT.format(**w, reg=r, T=T)}/{PROJECTION}"
            for T in self.row_temps(w["task"])
            for r in self.regs
        ]

    def figure_inputs(self, wildcards: Mapping[str, str]) -> dict[str, list[str]]:
        """A figure's `projections` and the metrics.json beside each: the figure
        places each panel by its run's α and T, read there."""
        files = self.projections(wildcards)
        return {
            "projections": files,
            "metrics": [p.replace(PROJECTION, METRICS) for p in files],
        }

    def dataset(self, wildcards: Mapping[str, str]) -> str:
        """The prepared dataset of the task: in-memory arrays (.npz) for fashion_mnist
        and CIFAR, a manifest of image files (.json) otherwise."""
        task = wildcards["task"]
        kind = self.config["tasks"][task]["data"]["dataset"]
        return DATASET.format(
            task=task, fmt="npz" if kind in ARRAY_DATASETS else "json"
        )

    def penultimate_data(self, wildcards: Mapping[str, str]) -> str:
        """The images the projection uses: the dataset itself, or for image folders
        the visualisation subset of docs/visualisation.md (rule `prepare_subset`)."""
        data = self.dataset(wildcards)
        return data if data.endswith(".npz") else SUBSET.format(task=wildcards["task"])

    def init_inputs(self, wildcards: Mapping[str, str], role: str) -> list[str]:
        """The model file a run of `role` starts from, if any (`lskd.plan.inits`)."""
        path = init_path(self.config, role, wildcards, self.alpha_token(wildcards))
        return [] if path is None else [path]

    def alpha_token(self, wildcards: Mapping[str, str]) -> str | None:
        """The alpha token of the teacher of a job's `reg` wildcard if it is a `ce` or
        `ls` teacher (`teacher_weights` keys), else None."""
        alpha = self.regularizer(wildcards).alpha
        return None if alpha is None else path_token(alpha)

    def sweep_outputs(self, name: str) -> list[str]:
        """`name` in each student of one fused T-sweep (rule `distill_students`): the
        paths the per-T rule `distill_student` writes, one per temperature."""
        return [
            f"{RESULTS}/<teacher_id>/{fill(STUDENT_NAME, T=T)}/{name}"
            for T in self.temps
        ]

    def nmt_sweep_outputs(self, name: str) -> list[str]:
        """`name` in each NMT student of one teacher directory, one per temperature."""
        return [
            f"{RESULTS}/<nmt_teacher_id>/{fill(NMT_STUDENT_NAME, T=T)}/{name}"
            for T in self.temps
        ]

    def nmt_runs(self, name: str) -> list[str]:
        """`name` of every NMT run of Table 5: the teachers of every pair, the
        students of `nmt.student_pairs`."""
        w = {"ntask": self.nmt_task}
        runs = [
            NMT_TEACHER.format(**w, pair=p, alpha=a, tseed=s)
            for p in self.nmt_pairs
            for a in self.nmt_alphas
            for s in self.nmt_seeds
        ]
        runs += [
            NMT_STUDENT.format(**w, pair=p, alpha=a, tseed=s, T=T)
            for p in self.nmt_student_pairs
            for a in self.nmt_alphas
            for s in self.nmt_seeds
            for T in self.temps
        ]
        return [f"{run}/{name}" for run in runs]

    # ---- the targets ----

    def pairs(self) -> Iterator[dict[str, str]]:
        """The wildcards (task, tarch, sarch, xfer) of every table: teacher -> student
        on a transfer set."""
        for task, t in self.tasks.items():
            for tarch in t["teacher_archs"]:
                for sarch in t["student_archs"]:
                    for xfer in self.xfers[task]:
                        yield {
                            "task": task,
                            "tarch": tarch,
                            "sarch": sarch,
                            "xfer": xfer,
                        }

    def has_delta(self) -> bool:
        """Δ(T) needs the `ce` teacher and at least one other regularizer."""
        bases = [c.is_base for c in self.regularizers.values()]
        return any(bases) and not all(bases)

    def final_targets(self) -> list[str]:
        """What `rule all` asks for: per pair its Δ(T) files (where the grid has Δ),
        its table and claims, its projection figures and diffusion figure (where the
        task draws them), its training curves; per arch pair with several transfer
        sets Δ across them; Table 5 of the NMT study."""
        pairs = list(self.pairs())
        drawn = [w for w in pairs if self.tasks[w["task"]]["penultimate"]["enabled"]]
        delta = [
            f.format(**w)
            for w in pairs
            for f in DELTA_FILES.values()
            if self.has_delta()
        ]
        transfer = {
            (w["task"], w["tarch"], w["sarch"])
            for w in pairs
            if self.has_delta() and len(self.xfers[w["task"]]) > 1
        }
        delta += [
            f.format(task=t, tarch=a, sarch=s)
            for t, a, s in sorted(transfer)
            for f in (f"{TRANSFER}.csv", TRANSFER_FIGURE)
        ]
        tables = [f"{TABLE.format(**w)}.{ext}" for w in pairs for ext in TABLE_FORMATS]
        claims = [
            f"{CLAIMS.format(**w)}.{ext}" for w in pairs for ext in CLAIMS_FORMATS
        ]
        figures = {f"{PROJECTIONS.format(**w, panel=_panel(w))}.png" for w in drawn}
        figures |= {
            f"{PROJECTIONS.format(**w, panel=TEACHERS_PANEL)}.png" for w in drawn
        }
        diffusion = [DIFFUSION_FIGURE.format(**w) for w in drawn]
        curves = [CURVES_FIGURE.format(**w) for w in pairs]
        return (
            delta
            + tables
            + claims
            + sorted(figures)
            + diffusion
            + curves
            + self.nmt_targets()
        )

    def nmt_targets(self) -> list[str]:
        """Table 5 of the NMT study, if it has pairs and `ce`/`ls` teachers."""
        if not self.nmt_pairs or not self.nmt_alphas:
            return []
        table = TABLE5.format(ntask=self.nmt_task)
        return [f"{table}.{ext}" for ext in TABLE_FORMATS]


def _panel(w: Mapping[str, str]) -> str:
    return panel(w["sarch"], w["xfer"])
