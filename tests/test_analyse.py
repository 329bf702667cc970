"""`lskd analyse`: the per-run analysis of many runs in one process writes exactly what
`extract`, `project` and `diffusion` write one run at a time."""

import json
import shutil

import numpy as np

from lskd.analysis.diffusion import diffusion_file
from lskd.analysis.penultimate import extract
from lskd.analysis.projection import project_file
from lskd.cli.main import main
from test_fused import data, teacher  # noqa: F401  (module fixtures)

CLASSES = [6, 0, 7]


def test_analyse_equals_the_three_steps(data, teacher, tmp_path):  # noqa: F811
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        run.mkdir()
        shutil.copy(teacher, run / "model.pt")
    flags = ["--classes", *map(str, CLASSES), "--train-per-class", "4"]
    flags += ["--test-per-class", "3"]
    models = [str(r / "model.pt") for r in runs]
    assert main(["analyse", *models, "--data", str(data), *flags]) == 0
    one = tmp_path / "one"
    one.mkdir()
    extract(teacher, data, CLASSES, 4, 3, one / "penultimate.npz")
    project_file(one / "penultimate.npz", one / "projection.npz")
    diffusion_file(one / "projection.npz", one / "diffusion.json")
    for run in runs:
        for name in ("penultimate.npz", "projection.npz"):
            with np.load(run / name) as got, np.load(one / name) as want:
                assert sorted(got.files) == sorted(want.files)
                for key in want.files:
                    assert np.array_equal(got[key], want[key]), (name, key)
        got = json.loads((run / "diffusion.json").read_text())
        want = json.loads((one / "diffusion.json").read_text())
        assert got.pop("source") == str(run / "projection.npz")
        assert want.pop("source") == str(one / "projection.npz")
        assert got == want
