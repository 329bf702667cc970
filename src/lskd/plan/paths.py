"""Where the workflow puts things: one pattern per kind of file, in Snakemake's
``{wildcard}`` syntax, used by the rules (workflow/rules/*.smk), the Snakefile's
pathvars and the plan (`lskd.plan.grid`, `lskd.plan.inits`) alike, so that no path is
spelled twice.

A run directory is named by its identity (`lskd.identity`): an image teacher
``results/<task>/teacher_<arch>_<regularizer>_s<seed>``, its students below it
``student_<arch>_<transfer>_<objective>T<T>_s<seed>``, an NMT teacher
``results/nmt_<study>_<pair>/teacher_transformer_a<alpha>_s<seed>`` with its students
``student_transformer_T<T>_s<seed>``. A regularizer is spelled by its method's token
(`a0` for `ce`, `a0.1` for `ls` alpha 0.1, `maxsup-l0.1`), an objective by its token
and `-` (nothing for the default `kd`: ``..._T3_s0``, ``..._dkd-a1-b8-w5-h0-T3_s0``),
numbers as path tokens (`lskd.spelling.path_token`), transfer sets as size tokens
(`lskd.data.transfer`). The file names inside a run directory are `lskd.identity`'s.
"""

from __future__ import annotations

import re

from lskd.identity import ANALYSIS_FILES as ANALYSIS_FILES
from lskd.identity import DIFFUSION as DIFFUSION
from lskd.identity import METRICS as METRICS
from lskd.identity import MODEL as MODEL
from lskd.identity import PROJECTION as PROJECTION

RESULTS = "results"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
DATA = "resources/data"
# Every directory the workflow writes below its working directory (the rules' log:
# and benchmark: files go to logs/ and benchmarks/).
OUTPUT_DIRS = (RESULTS, "resources", "logs", "benchmarks")

# Image runs: the task's directory, a teacher in it, a student in its teacher's.
TASK_DIR = f"{RESULTS}/{{task}}"
TEACHER_NAME = "teacher_{tarch}_{reg}_s{tseed}"
STUDENT_NAME = "student_{sarch}_{xfer}_{obj}{T}_s{seed}"
TEACHER = f"{TASK_DIR}/{TEACHER_NAME}"
STUDENT = f"{TEACHER}/{STUDENT_NAME}"

# NMT runs (Table 5): one directory per study and pair; students share the teacher's
# seed.
NMT_STUDY = "nmt_{ntask}_{pair}"
NMT_DIR = f"{RESULTS}/{NMT_STUDY}"
NMT_TEACHER = f"{NMT_DIR}/teacher_transformer_a{{alpha}}_s{{tseed}}"
NMT_STUDENT_NAME = "student_transformer_T{T}_s{tseed}"
NMT_STUDENT = f"{NMT_TEACHER}/{NMT_STUDENT_NAME}"

# The files of one run directory (MODEL, METRICS, ANALYSIS_FILES, ...) are named in
# lskd.identity; the imports above re-export them to the rules.

# Prepared data and imported weights.
DATASET = f"{DATA}/{{task}}/dataset.{{fmt}}"  # fmt: npz (arrays) or json (manifest)
SUBSET = f"{DATA}/{{task}}/penultimate.json"  # the projection's images of a folder task
WEIGHTS = "resources/weights/{name}.pt"  # name: <arch>-<source>
NMT_DATA = f"{DATA}/{NMT_STUDY}"
NMT_PREPARED = f"{NMT_DATA}/prepared"  # fairseq-preprocess output of one pair

# Tables and figures of one teacher -> student pair on one transfer set.
ARCH_PAIR = "{task}_{tarch}-{sarch}"
PAIR = f"{ARCH_PAIR}_{{xfer}}"
TABLE = f"{TABLES}/{PAIR}"  # .csv, .md, .tex, .html
CLAIMS = f"{TABLE}_claims"  # .csv, .md, .html
DIFFUSION_TABLE = f"{TABLE}_diffusion"  # .csv, .html
DIFFUSION_FIGURE = f"{FIGURES}/diffusion_{PAIR}.png"
DELTA = f"{TABLE}_delta"  # .csv, .md, .tex, .html, _summary.md, _summary.html
DELTA_FIGURE = f"{FIGURES}/delta_{PAIR}.png"
CURVES_FIGURE = f"{FIGURES}/curves_{PAIR}.png"  # training curves of a pair's runs
TRANSFER = f"{TABLES}/{ARCH_PAIR}_transfer"  # Δ(T) across transfer sets
TRANSFER_FIGURE = f"{FIGURES}/delta_{ARCH_PAIR}_transfer.png"
# Projection figures: panel `teachers` or `<sarch>_<xfer>` (`panel`).
PROJECTIONS = f"{FIGURES}/penultimate_{{task}}_{{tarch}}-{{panel}}"  # .png, .pdf
TABLE5 = f"{TABLES}/table5_{{ntask}}"  # .csv, .md, .tex, .html
TABLE5_CURVES = f"{FIGURES}/table5_{{ntask}}_valid_loss.png"  # NMT loss per update

TEACHERS_PANEL = "teachers"
XFER_RE = r"all|n\d+|f0\.\d+"  # a transfer-set token (lskd.data.transfer)
# Inline constraints of the run-id wildcards: the Snakefile's pathvars introduce these
# wildcards after the global wildcard_constraints are applied.
CONSTRAINTS = {
    "task": r"[a-z0-9]+",
    "tarch": r"[a-z0-9_]+?",
    "reg": r"[a-z][a-z0-9.-]*",  # a regularizer's token (no underscore)
    "obj": r"T|[a-z][a-z0-9.-]*-T",  # an objective's token, then T
    "alpha": r"\d+(\.\d+)?",  # NMT teachers
    "tseed": r"\d+",
    "sarch": r"[a-z0-9_]+?",
    "xfer": XFER_RE,
    "T": r"\d+(\.\d+)?",
    "seed": r"\d+",
    "ntask": r"[a-z0-9]+",
    "pair": r"en_[a-z]{2}",
}
_WILDCARD = re.compile(r"\{(\w+)\}")


def fill(pattern: str, **values: object) -> str:
    """`pattern` with the wildcards named in `values` filled in, the others kept:
    ``fill(STUDENT_NAME, T=3)`` is ``student_{sarch}_{xfer}_{obj}3_s{seed}``."""
    return _WILDCARD.sub(
        lambda m: str(values[m[1]]) if m[1] in values else m[0], pattern
    )


def constrained(pattern: str) -> str:
    """`pattern` with each wildcard's inline constraint (`CONSTRAINTS`)."""
    return _WILDCARD.sub(lambda m: f"{{{m[1]},{CONSTRAINTS[m[1]]}}}", pattern)


def run_id(pattern: str) -> str:
    """A run-directory pattern relative to `RESULTS` (a pathvar's value)."""
    return pattern.removeprefix(f"{RESULTS}/")


def pathvars() -> dict[str, str]:
    """The Snakefile's pathvars, with inline constraints: `teacher_id`, `student_id`
    (below `<teacher_id>`) and `nmt_teacher_id`, each relative to `RESULTS`."""
    return {
        "teacher_id": constrained(run_id(TEACHER)),
        "student_id": f"<teacher_id>/{constrained(STUDENT_NAME)}",
        "nmt_teacher_id": constrained(run_id(NMT_TEACHER)),
    }


def panel(sarch: str, xfer: str) -> str:
    """The projection-figure panel of students of `sarch` on transfer set `xfer`."""
    return f"{sarch}_{xfer}"


def split_panel(name: str) -> tuple[str, str]:
    """A student panel `<sarch>_<xfer>` as (sarch, xfer)."""
    sarch, _, xfer = name.rpartition("_")
    return sarch, xfer
