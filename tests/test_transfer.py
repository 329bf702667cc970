"""The KD transfer set (lskd.data.transfer): canonical sizes, a deterministic stratified
draw that is paired across teachers and temperatures, nested across sizes, different
across seeds, and applied to the training split only, for both loaders and the fused
sweep."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from lskd.data.folders import save_manifest, scan_imagefolder
from lskd.data.source import open_source
from lskd.data.transfer import TransferSet, draw_seed, size_token, size_tokens
from lskd.errors import ConfigError
from lskd.train.job import distill_student, distill_students, train_teacher
from test_folders import TINY, make_imagefolder
from test_fused import _spec, data, teacher  # noqa: F401  (module fixtures)

LABELS = np.repeat(np.arange(4), [10, 20, 30, 40])  # unequal classes


@pytest.mark.parametrize(
    ("value", "token"),
    [("all", "all"), (30, "n30"), (30.0, "n30"), (0.1, "f0.1"), (0.25, "f0.25")],
)
def test_size_token_spells_each_size_once(value, token):
    assert size_token(value) == token


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "images per class must be >= 1"),
        (1.5, r"a fraction must lie in \(0, 1\)"),
        (1e-7, "at most 6 decimals"),
        ("most", "is not a transfer size"),
        (True, "is not a transfer size"),
    ],
)
def test_bad_sizes_name_the_key(value, message):
    with pytest.raises(ConfigError, match=f"^tasks.x.student.transfer: .*{message}"):
        size_token(value, "tasks.x.student.transfer")


def test_two_spellings_of_one_size_collide():
    with pytest.raises(ConfigError, match=r"transfer\[2\]: 30.0 is the same .*\[0\]"):
        size_tokens([30, "all", 30.0], "transfer")


def test_per_class_draw_is_stratified_deterministic_and_nested():
    small, large = TransferSet("n5", 7), TransferSet("n9", 7)
    idx = small.indices(LABELS)
    assert np.array_equal(idx, np.sort(idx)) and len(set(idx)) == 20
    assert np.bincount(LABELS[idx]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(idx, TransferSet("n5", 7).indices(LABELS))  # same seed
    assert set(idx) <= set(large.indices(LABELS))  # nested sizes
    other = TransferSet("n5", 8).indices(LABELS)
    assert not np.array_equal(idx, other)  # another seed, other images
    assert draw_seed(7) != draw_seed(8)


def test_fraction_rounds_per_class_and_all_is_everything():
    idx = TransferSet("f0.25", 0).indices(LABELS)
    # round(0.25 * n) per class: 2 (2.5 rounds to even), 5, 8 (7.5), 10
    assert np.bincount(LABELS[idx]).tolist() == [2, 5, 8, 10]
    assert np.array_equal(TransferSet("all", 0).indices(LABELS), np.arange(100))


def test_more_images_than_a_class_has_is_an_error():
    with pytest.raises(ConfigError, match="class 0 has only 10 training images"):
        TransferSet("n11", 0).indices(LABELS)


def test_a_batch_larger_than_the_transfer_set_is_an_error(data):  # noqa: F811
    source = open_source(data, {"pad": 0}, transfer=TransferSet("n3", 1))
    with pytest.raises(ConfigError, match="batch_size: 64 is more than the 30"):
        source.train_batches(64, torch.Generator())


def test_bad_token_is_an_error():
    with pytest.raises(ConfigError, match="--transfer: 'n0x'"):
        TransferSet("n0x", 0)


def test_record_describes_the_images(data):  # noqa: F811
    source = open_source(data, {"pad": 0}, transfer=TransferSet("n3", 1))
    full = open_source(data, {"pad": 0})
    labels = full.labels("train")
    idx = TransferSet("n3", 1).indices(labels)
    assert np.array_equal(source.labels("train"), labels[idx])
    for split in ("val", "test"):  # never cut
        assert np.array_equal(source.labels(split), full.labels(split))
    rec = source.transfer
    assert rec["size"] == "n3" and rec["images"] == 30 == len(idx)
    assert rec["per_class_min"] == rec["per_class_max"] == 3
    assert rec["draw_seed"] == draw_seed(1) and full.transfer is None


def test_image_folders_cut_the_training_split_only(tmp_path):
    root = make_imagefolder(tmp_path / "folders")
    path = tmp_path / "manifest.json"
    manifest = scan_imagefolder(root, val_per_class=2, split_seed=0)
    save_manifest(manifest, path)
    source = open_source(path, TINY, transfer=TransferSet("n2", 0))
    idx = TransferSet("n2", 0).indices(manifest.labels("train"))
    assert source.manifest.splits["train"] == [manifest.splits["train"][i] for i in idx]
    assert source.manifest.splits["val"] == manifest.splits["val"]
    assert source.transfer["images"] == 2 * len(manifest.class_names)


def test_students_of_both_teachers_and_every_T_share_their_images(
    data,  # noqa: F811
    teacher,  # noqa: F811
    tmp_path,
):
    """Paired: the alpha = 0 and alpha = 0.1 teachers' students of one seed, single
    jobs and the fused sweep, distil on the same images; another seed does not."""
    plain = _spec(data, tmp_path / "t0", "mlp128", epochs=1)
    train_teacher(plain, alpha=0.0)

    def with_transfer(spec, **kw):  # batch 20: two steps per epoch on 40 images
        recipe = replace(spec.recipe, batch_size=20)
        return replace(spec, recipe=recipe, transfer="n4", **kw)

    def student(out, teacher_path, seed=3, T=2.0):
        spec = with_transfer(_spec(data, tmp_path / out, "mlp128", epochs=1), seed=seed)
        return distill_student(spec, teacher_path, T)["transfer"]

    a0, a1 = student("s0", plain.model_out), student("s1", teacher)
    specs = [
        with_transfer(_spec(data, tmp_path / f"f{T}", "mlp128", epochs=1))
        for T in (1, 4)
    ]
    fused = [m["transfer"] for m in distill_students(specs, teacher, [1.0, 4.0])]
    assert a0 == a1 == fused[0] == fused[1]
    assert a0["images"] == 40
    assert student("s9", teacher, seed=4)["indices_sha256"] != a0["indices_sha256"]
    written = json.loads((tmp_path / "s1" / "metrics.json").read_text())
    assert written["transfer"] == a1


def test_max_steps_caps_whole_epochs_by_the_transfer_set(data, teacher, tmp_path):  # noqa: F811
    """`max_steps` = 5 with 2 steps per epoch (40 images, batch 20): ceil(5 / 2) = 3 of
    the 50 configured epochs run, in single jobs and the fused sweep alike; metrics say
    what ran (`epochs`, `history`) and what was asked (`config.recipe`)."""

    def spec(out):
        s = _spec(data, tmp_path / out, "mlp128", epochs=50)
        recipe = replace(s.recipe, batch_size=20, max_steps=5, val_every=1)
        return replace(s, recipe=recipe, transfer="n4")

    single = distill_student(spec("one"), teacher, 2.0)
    fused = distill_students([spec("f1"), spec("f4")], teacher, [1.0, 4.0])
    for metrics in (single, *fused):
        assert metrics["epochs"] == len(metrics["history"]) == -(-5 // 2)
        assert metrics["config"]["recipe"]["epochs"] == 50
    assert replace(spec("x").recipe, max_steps=0).capped(2).epochs == 50  # no cap
    assert spec("x").recipe.capped(100).epochs == 1  # at least one epoch
