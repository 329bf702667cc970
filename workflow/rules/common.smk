# Config validation, constants, wildcard constraints and the lookups the rules call (no
# rules here). The plan itself is in the package, tested there: lskd.plan.paths (every
# path pattern), lskd.plan.grid (the runs, each rule's inputs, the final targets),
# lskd.plan.jobs (job arguments), lskd.plan.inits (init files), lskd.plan.report.

from lskd.plan import jobs, paths
from lskd.plan.config import check_data_roots, validate_config
from lskd.plan.checks import check_data_sources, check_init_teachers
from lskd.plan.checks import check_writable, exit_on_error
from lskd.plan.models import end_of_run, grid_models, set_aside_stale_models
from lskd.plan.grid import DELTA_FILES, Grid
from lskd.plan.report import report_item

exit_on_error(validate_config, config)  # the schema: lskd/config.schema.yaml
# No run directory may hold runs of other data (its data_source.json says which).
exit_on_error(check_data_sources, config)
exit_on_error(check_init_teachers, config)  # teachers of tasks not run


onstart:
    # Before any job runs, but not in a dry run (which must work without the data).
    exit_on_error(check_data_roots, config)
    exit_on_error(check_writable, paths.OUTPUT_DIRS)  # a read-only results/


onsuccess:
    end_of_run(config)


onerror:
    end_of_run(config)


GRID = Grid(config)
# A finished run whose model.pt is missing or damaged (not the sha256 its metrics.json
# records: set aside as model.pt.damaged) is planned again with what depends on it:
# rule all asks for every run's model file.
if workflow.is_main_process:
    set_aside_stale_models(GRID)
RUN = config["run"]
# Paper-scale corpora (local IWSLT/WMT files) get the paper's BLEU beside ours in Table 5.
NMT_TABLE_FLAGS = " --paper" if config["nmt"]["corpus"]["kind"] == "files" else ""
# The flags of a table's four files, from the rule's outputs of the same names.
TABLE_FILES = (
    "--csv {output.csv} --md {output.md} --tex {output.tex} --html {output.html}"
)
# Per-job needs, for any executor (profiles add site keys and may override per rule).
TRAIN_RESOURCES = {"mem_mb": 4000, "runtime": 240}
NMT_RESOURCES = {"gpu": 1, "mem_mb": 8000, "runtime": 1440}  # gpu ignored locally


# For rules whose paths spell wildcards directly; the run-id pathvars carry their own
# constraints (lskd.plan.paths.CONSTRAINTS).
wildcard_constraints:
    task="|".join(GRID.tasks),
    tarch="|".join(GRID.archs),
    sarch="|".join(GRID.archs),
    panel=rf"{paths.TEACHERS_PANEL}|({'|'.join(GRID.archs)})_({paths.XFER_RE})",
    xfer=paths.XFER_RE,
    fmt="npz|json",
    name=r"[a-z0-9_]+-[a-z0-9_]+",
    seed=paths.CONSTRAINTS["seed"],
    pair=paths.CONSTRAINTS["pair"],
    ntask=GRID.nmt_task or paths.CONSTRAINTS["ntask"],


def per_job(function, *args):
    """An input, params, threads or resources function of a rule:
    `function(GRID, wildcards, *args)` (a `Grid` method or an `lskd.plan.jobs` one)."""
    return lambda wildcards: function(GRID, wildcards, *args)


def reported(path, kind, **values):
    """`path` as an item of the Snakemake report (`lskd.plan.report.report_item`)."""
    return report(path, **report_item(kind, path, **values))


def sweep_reports(kind, files):
    """The metrics.json files of a T-sweep (one per T) as report items of `kind`."""
    return [reported(f, kind, T=T) for f, T in zip(files, GRID.temps)]


def delta_outputs():
    """`lskd delta`'s outputs by flag name: the Δ table, its summary and figure."""
    return {
        name: reported(p, "delta") if p.endswith((".html", ".png")) else p
        for name, p in DELTA_FILES.items()
    }


def gpu_resources(kind):
    """GPUs of a training job = its recipe's data-parallel processes (`kind`)."""
    return {"gpu": per_job(jobs.gpus, kind), **TRAIN_RESOURCES}
