"""NMT corpus, BLEU, Table 5 and config: broken inputs name the file or key; numbers are
recomputed by hand."""

from __future__ import annotations

import copy
import json
import math
import struct
from pathlib import Path

import pytest
import yaml

from lskd.errors import ConfigError, DataError
from lskd.nmt import bleu, corpus
from lskd.nmt.table import write_nmt_table
from lskd.plan.config import validate_config

REPO = Path(__file__).resolve().parents[1]


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU .mo catalog (the format of LibreOffice's translations)."""
    header = {"": "Content-Type: text/plain; charset=UTF-8\n"}
    items = sorted({**header, **messages}.items())
    ids = b"".join(k.encode() + b"\0" for k, _ in items)
    strs = b"".join(v.encode() + b"\0" for _, v in items)
    n, start = len(items), 28 + 16 * len(items)
    table, offset = [], start
    for k, _ in items:
        table += [len(k.encode()), offset]
        offset += len(k.encode()) + 1
    for _, v in items:
        table += [len(v.encode()), offset]
        offset += len(v.encode()) + 1
    head = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + struct.pack(f"<{4 * n}I", *table) + ids + strs)


def test_unequal_line_counts_name_the_file(tmp_path):
    (tmp_path / "train.en").write_text("a\nb\nc\n")
    (tmp_path / "train.de").write_text("x\ny\n")
    with pytest.raises(
        DataError, match=r"train\.de: 2 sentences but .*train\.en has 3"
    ):
        corpus.read_parallel(tmp_path / "train.en", tmp_path / "train.de")


def test_empty_or_missing_file_is_named(tmp_path):
    (tmp_path / "train.en").write_text("a\n")
    (tmp_path / "train.de").write_text("\n\n")
    with pytest.raises(DataError, match=r"train\.de: empty file"):
        corpus.read_parallel(tmp_path / "train.en", tmp_path / "train.de")
    with pytest.raises(DataError, match=r"nope\.en: file not found"):
        corpus.read_lines(tmp_path / "nope.en")


def test_iwslt_formats(tmp_path):
    tags = tmp_path / "train.tags.de-en.en"
    tags.write_text("<url>http://x</url>\n<title>Talk</title>\nHello  world\n")
    assert corpus.read_lines(tags) == ["Talk", "Hello world"]
    xml = tmp_path / "IWSLT14.TED.tst2010.de-en.en.xml"
    xml.write_text('<doc>\n<seg id="1"> One. </seg>\n<seg id="2">Two</seg>\n</doc>\n')
    assert corpus.read_lines(xml) == ["One.", "Two"]


def test_files_splits_keep_test_sources_out_of_train(tmp_path):
    train = [f"s{i}" for i in range(46)] + ["shared"]
    for lang in ("en", "de"):
        (tmp_path / f"train.{lang}").write_text("".join(f"{x}-{lang}\n" for x in train))
        (tmp_path / f"test.{lang}").write_text(f"shared-{lang}\nt1-{lang}\n")
    spec = {
        "train": str(tmp_path / "train.{lang}"),
        "test": [str(tmp_path / "test.{lang}")],
        "valid_every": 23,
    }
    splits = corpus.files_splits(spec, "de")
    # lines 23 and 46 (1-based) go to valid; 'shared' is in test, so train loses it
    assert [en for en, _ in splits["valid"]] == ["s22-en", "s45-en"]
    assert len(splits["train"]) == 47 - 2 - 1
    assert "shared-en" not in {en for en, _ in splits["train"]}


def _lo_spec(root: Path, **changes) -> dict:
    return {
        "kind": "libreoffice",
        "root": str(root),
        "valid_size": 5,
        "test_size": 6,
        "split_seed": 0,
        "min_words": 1,
        "max_words": 6,
        "lowercase": False,
        "max_train": None,
        **changes,
    }


def _split_sources(raw: Path) -> dict[str, list[str]]:
    return {s: (raw / f"{s}.en").read_text().splitlines() for s in corpus.SPLITS}


def _assert_disjoint(sources: dict[str, list[str]]) -> None:
    seen = [en for split in corpus.SPLITS for en in sources[split]]
    assert len(seen) == len(set(seen)), "an English source is in two splits"


def test_libreoffice_catalogs_are_cleaned_deduplicated_and_split(tmp_path):
    root = tmp_path / "lo"
    messages = {f"ctx{i}\x04Open file {i}": f"Datei {i} öffnen" for i in range(40)}
    messages["a\x04_Save as"] = "_Speichern unter"  # GTK mnemonic
    messages["b\x04Save as"] = "Speichern unter"  # same source, other context
    messages["c\x04Untranslated"] = "Untranslated"  # dropped
    long = {f"l{i}\x04Seven words in this long message {i}": f"L {i}" for i in range(9)}
    write_mo(root / "resource/de/LC_MESSAGES/sw.mo", {**messages, **long})
    catalog = corpus.libreoffice_catalog(root, "de")
    assert catalog["Save as"] == "Speichern unter"
    assert "Untranslated" not in catalog and len(catalog) == 41 + 9
    info = corpus.prepare_corpus(_lo_spec(root), "en_de", tmp_path / "raw")
    # the word-count filter runs before the split: the splits have exactly the
    # configured sizes and the 9 long sources are in none of them
    assert info["sizes"] == {"train": 30, "valid": 5, "test": 6}
    sources = _split_sources(tmp_path / "raw")
    _assert_disjoint(sources)
    assert not any(len(en.split()) > 6 for split in sources.values() for en in split)
    # the split of a source depends only on the string and the seed
    short = {en: t for en, t in catalog.items() if len(en.split()) <= 6}
    again = corpus.split_by_source(short, 5, 6, 0)
    assert [en for en, _ in again["test"]] == sources["test"]
    corpus.prepare_corpus(_lo_spec(root), "en_de", tmp_path / "raw2")
    assert _split_sources(tmp_path / "raw2") == sources  # deterministic


def test_too_small_corpus_names_the_key(tmp_path):
    root = tmp_path / "lo"
    messages = {f"c{i}\x04Open file {i}": f"Datei {i}" for i in range(20)}
    messages |= {f"l{i}\x04Seven words in this long message {i}": "L" for i in range(9)}
    write_mo(root / "resource/de/LC_MESSAGES/sw.mo", messages)
    # 29 sources, but only 20 pass max_words: too few for 10 + 10 and training
    spec = _lo_spec(root, valid_size=10, test_size=10)
    with pytest.raises(DataError, match=r"^nmt\.corpus\.test_size: 20 sources") as err:
        corpus.prepare_corpus(spec, "en_de", tmp_path / "raw")
    assert "\n" not in str(err.value)


def test_lowercasing_runs_before_the_split(tmp_path):
    root = tmp_path / "lo"
    messages = {f"c{i}\x04Open file {i}": f"Datei {i}" for i in range(30)}
    messages |= {f"u{i}\x04OPEN FILE {i}": f"DATEI {i}" for i in range(30)}
    write_mo(root / "resource/de/LC_MESSAGES/sw.mo", messages)
    spec = _lo_spec(root, lowercase=True)
    info = corpus.prepare_corpus(spec, "en_de", tmp_path / "raw")
    assert info["sizes"] == {"train": 30 - 11, "valid": 5, "test": 6}
    _assert_disjoint(_split_sources(tmp_path / "raw"))


DEMO_CORPUS = REPO / "resources" / "raw" / "libreoffice"


@pytest.mark.skipif(not DEMO_CORPUS.is_dir(), reason="demo corpus not extracted")
@pytest.mark.parametrize("pair", ["en_de", "en_ru"])
def test_demo_corpus_splits_have_the_configured_sizes(tmp_path, pair):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(config)
    spec = {**config["nmt"]["corpus"], "root": str(DEMO_CORPUS)}
    info = corpus.prepare_corpus(spec, pair, tmp_path / "raw")
    assert info["sizes"]["valid"] == spec["valid_size"]
    assert info["sizes"]["test"] == spec["test_size"] >= 300
    assert 0 < info["sizes"]["train"] <= (spec["max_train"] or float("inf"))
    sources = _split_sources(tmp_path / "raw")
    _assert_disjoint(sources)
    longest = spec["max_words"] or float("inf")
    assert all(len(en.split()) <= longest for split in sources.values() for en in split)


def test_missing_libreoffice_root_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="scripts/setup.sh"):
        corpus.libreoffice_catalog(tmp_path, "ru")


def test_sacrebleu_of_a_known_pair():
    # hyp "the cat sat on the mat" vs ref "the cat is on the mat" (13a keeps the words):
    # 1-grams 5/6, 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4 (on the mat),
    # 4-grams 0/3 -> 'exp' smoothing uses 1 / (2 * 3); equal lengths, so BP = 1.
    expected = 100 * math.exp(
        (math.log(5 / 6) + math.log(3 / 5) + math.log(1 / 4) + math.log(1 / 6)) / 4
    )
    score = bleu.corpus_bleu(["the cat sat on the mat"], ["the cat is on the mat"])
    assert score["bleu"] == pytest.approx(expected, abs=1e-6)
    assert score["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert bleu.corpus_bleu(["a b c d"], ["a b c d"])["bleu"] == pytest.approx(100)


def test_hypotheses_follow_sentence_ids(tmp_path):
    out = tmp_path / "generate-test.txt"
    out.write_text("S-1\tsrc\nH-1\t-0.1\tzwei\nD-1\t-0.1\tZwei .\nD-0\t-0.2\tEins\n")
    assert bleu.read_hypotheses(out, 3) == (["Eins", "Zwei .", ""], 1)


def _metrics(task, role, alpha, value, T=None, seed=0):
    run = {
        "role": role,
        "task": task,
        "arch": "transformer",
        "alpha": alpha,
        "seed": seed,
        "bleu": value,
        "sacrebleu_signature": "nrefs:1|tok:13a",
        "selection": "last",
        "eval_split": "test",
    }
    return run | ({"T": T} if T is not None else {})


def test_table5_layout_and_caption(tmp_path):
    runs = [
        _metrics("nmt_en_de", "teacher", 0.0, 26.461),
        _metrics("nmt_en_de", "teacher", 0.1, 26.75),
        _metrics("nmt_en_de", "student", 0.1, 25.085, T=1),
        _metrics("nmt_en_ru", "teacher", 0.0, 16.718),
    ]
    paths = []
    for i, run in enumerate(runs):
        paths.append(tmp_path / f"m{i}.json")
        paths[-1].write_text(json.dumps(run))
    out = {ext: tmp_path / f"t.{ext}" for ext in ("csv", "md", "tex", "html")}
    table = write_nmt_table(paths, out["csv"], out["md"], out["tex"], out["html"])
    assert list(table.columns) == [
        "EN→DE alpha = 0.0",
        "EN→DE alpha = 0.1",
        "EN→DE Δ(alpha = 0.1 − 0)",  # paired by seed; one seed: no interval
        "EN→RU alpha = 0.0",
    ]
    teacher = ["26.46", "26.75", "+0.29", "16.72"]
    assert table.loc["Teacher transformer"].tolist() == teacher
    assert table.loc["Student transformer, T=1"].tolist() == ["–", "25.09", "–", "–"]
    md = out["md"].read_text()
    assert "nrefs:1|tok:13a" in md
    assert "1 seed per cell" in md and "one seed gives no interval" in md
    assert r"\caption" in out["tex"].read_text()
    runs[3]["bleu"] = "high"
    paths[3].write_text(json.dumps(runs[3]))
    with pytest.raises(DataError, match=r"m3\.json: key 'bleu'"):
        write_nmt_table(paths, out["csv"], out["md"], out["tex"])


def test_table5_delta_has_the_images_paired_interval_over_seeds(tmp_path):
    # student T=2, seeds 0-2: alpha 0.1 - alpha 0 = 1.0, 2.0, 3.0 -> mean 2, sd 1,
    # half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    bleu = {0.0: [10.0, 11.0, 12.0], 0.1: [11.0, 13.0, 15.0]}
    paths = []
    for alpha, values in bleu.items():
        for seed, value in enumerate(values):
            run = _metrics("nmt_en_de", "student", alpha, value, T=2, seed=seed)
            paths.append(tmp_path / f"s{alpha}_{seed}.json")
            paths[-1].write_text(json.dumps(run))
    outs = [tmp_path / f"t.{e}" for e in ("csv", "md", "tex")]
    table = write_nmt_table(paths, *outs)
    cell = table.loc["Student transformer, T=2", "EN→DE Δ(alpha = 0.1 − 0)"]
    assert cell == "+2.00 [-0.48, +4.48]"
    assert table.loc["Student transformer, T=2", "EN→DE alpha = 0.1"] == (
        "13.00 ± 2.00 (n=3)"
    )
    md = outs[1].read_text()
    assert "3 seeds per cell" in md and "no interval" not in md


def test_nmt_score_takes_the_configs_generate_mapping(config, monkeypatch):
    """`nmt-score --gen` with the demo config's nmt.generate (no lenpen, no
    batch_size): the schema's defaults fill them in."""
    from lskd.cli.main import main
    from lskd.nmt import pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "score", lambda *a: seen.setdefault("gen", a[-1]))
    gen = config["nmt"]["generate"]
    assert "lenpen" not in gen
    argv = ["nmt-score", "--pair", "en_de", "--data", "d", "--models", "m.pt"]
    main([*argv, "--out", "o.json", "--gen", json.dumps(gen)])
    assert seen["gen"] == gen | {"lenpen": 1.0, "batch_size": 128}
    with pytest.raises(SystemExit):
        main([*argv, "--out", "o.json", "--gen", json.dumps(gen | {"beams": 2})])


def _history(*losses, nll=None):
    nll = nll or [1.0] * len(losses)
    return [
        {"update": 100 * (i + 1), "loss": v, "nll_loss": n}
        for i, (v, n) in enumerate(zip(losses, nll, strict=True))
    ]


def test_nmt_curves_from_made_up_histories(tmp_path):
    from lskd.nmt.curves import _series, diverged, parse_curve, plot_nmt_curves

    runs = {
        "teacher": _metrics("nmt_en_de", "teacher", 0.0, 13.0),
        "t1": _metrics("nmt_en_de", "student", 0.0, 11.0, T=1),
        "t64": _metrics("nmt_en_de", "student", 0.0, 0.0, T=64),
    }
    runs["teacher"]["train"] = {"valid_history": _history(5.0, 4.0, 3.5)}
    runs["t1"]["train"] = {"valid_history": _history(6.0, 5.0, 4.0)}
    runs["t64"]["train"] = {"valid_history": _history(9.0, 9.5, None)}
    paths = []
    for name, run in runs.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(run))
    curve = parse_curve(runs["t1"], "t1")
    x, y = _series([curve], "loss")
    assert x.tolist() == [100, 200, 300] and y.tolist() == [[6.0, 5.0, 4.0]]
    assert not diverged(runs["t1"]["train"]["valid_history"])
    assert diverged(_history(1.0, 2.0))  # ended above where it started
    assert diverged(_history(1.0, float("inf")))
    flagged = plot_nmt_curves(paths, tmp_path / "c.png")
    assert flagged == ["EN→DE: student T=64, alpha = 0.0 ‡ diverged"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    del runs["t1"]["train"]
    with pytest.raises(DataError, match="valid_history"):
        parse_curve(runs["t1"], "t1.json")


def test_validation_history_replaces_entries_after_a_resume_point(tmp_path):
    from lskd.nmt.fairseq_run import record_validation

    path = tmp_path / "h.json"
    for update, loss in [(100, 5.0), (200, 4.0), (300, float("nan"))]:
        record_validation(path, {"num_updates": update, "loss": loss, "nll_loss": 1})
    record_validation(path, {"num_updates": 200, "loss": 3.0, "nll_loss": 1.0})
    history = json.loads(path.read_text())
    assert history == [
        {"update": 100, "loss": 5.0, "nll_loss": 1.0},
        {"update": 200, "loss": 3.0, "nll_loss": 1.0},
    ]
    record_validation(path, {"num_updates": 300, "loss": float("inf")})
    assert json.loads(path.read_text())[-1] == {"update": 300, "loss": None}


def test_table5_with_paper_bleu_and_deltas(tmp_path):
    from lskd.analysis.paper import load_paper_numbers

    paper = load_paper_numbers().dropna(subset=["bleu"])
    offsets = {("teacher", None): 0.2, ("student", 1.0): -1.5, ("student", 64.0): 0.3}
    paths = []
    for (role, T), off in offsets.items():
        row = paper[
            (paper["task"] == "nmt_en_ru")
            & (paper["alpha"] == 0.1)
            & (paper["role"] == role)
            & (paper["T"].isna() if T is None else paper["T"] == T)
        ]
        run = _metrics("nmt_en_ru", role, 0.1, row["bleu"].item() + off, T=T)
        paths.append(tmp_path / f"m{len(paths)}.json")
        paths[-1].write_text(json.dumps(run))
    outs = [tmp_path / f"t.{e}" for e in ("csv", "md", "tex")]
    table = write_nmt_table(paths, *outs, paper=True)
    col = "EN→RU alpha = 0.1"
    assert list(table.columns) == [col, f"{col} paper", f"{col} Δ"]
    for (_role, T), off in offsets.items():
        label = "Teacher transformer" if T is None else f"Student transformer, T={T:g}"
        cell = table.loc[label, f"{col} Δ"]
        assert float(cell.split()[0]) == pytest.approx(off, abs=0.006)
        assert cell.endswith("✓") == (abs(off) <= 0.3)
    # the paper's T=2 and T=3 cells are shown though we have no run there
    assert table.loc["Student transformer, T=1", f"{col} paper"] != "–"
    assert "✓ marks the 2 of 3 compared cells" in outs[1].read_text()


@pytest.fixture
def config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_demo_config_runs_nmt_with_defaults(config):
    validate_config(config)
    assert config["nmt"]["pairs"] and config["nmt"]["generate"]["lenpen"] == 1.0
    assert config["nmt"]["student"]["kd"]["weight"] == 0.9


def test_paper_config_lists_the_table5_grid(config):
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert paper["nmt"]["pairs"] == ["en_de", "en_ru"]
    assert paper["nmt"]["student_pairs"] is None


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("pairs", ["de_en"], "nmt.pairs[0]"),
        ("student_pairs", ["en_fr"], "nmt.student_pairs[0]"),
        ("bpe_vocab", 10, "nmt.bpe_vocab"),
        ("corpus", {"kind": "files"}, "nmt.corpus.files"),
        ("teacher", None, "nmt.teacher"),
    ],
)
def test_bad_nmt_keys_are_named(config, key, value, named):
    bad = copy.deepcopy(config)
    if value is None:
        del bad["nmt"][key]
    else:
        bad["nmt"][key] = value
    with pytest.raises(
        ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")
    ):
        validate_config(bad)


def test_nmt_cli_errors_are_one_line(tmp_path):
    from conftest import run_cli

    (tmp_path / "a.en").write_text("one\ntwo\n")
    (tmp_path / "a.de").write_text("eins\n")
    spec = {
        "kind": "files",
        "files": {"en_de": {"train": str(tmp_path / "a.{lang}"), "test": ["x"]}},
        "valid_every": 23,
        "min_words": 1,
        "lowercase": False,
        "max_train": None,
        "split_seed": 0,
    }
    result = run_cli(
        "nmt-prepare", "--pair", "en_de", "--corpus", json.dumps(spec),
        "--vocab-size", "100", "--out", str(tmp_path / "o"), "--splits",
        str(tmp_path / "s.json"),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"lskd nmt-prepare: error: {tmp_path / 'a.de'}: 1 sentences but "
        f"{tmp_path / 'a.en'} has 2 (files must be line-aligned)"
    )


def test_table5_answer_sentence_from_paired_seeds():
    from lskd.nmt.table import nmt_headline, parse_bleu_run

    bleu = {  # (alpha, T) -> BLEU of seeds 0, 1, 2: alpha 0.1 students +1, +2, +1.5
        (0.0, 1): (10.0, 11.0, 12.0),
        (0.1, 1): (11.0, 13.0, 13.5),
        (0.0, 64): (1.0, 1.0, 1.0),
        (0.1, 64): (1.0, 1.0, 1.0),
    }
    runs = [
        _metrics("nmt_en_de", "student", a, v, T=T, seed=s)
        for (a, T), values in bleu.items()
        for s, v in enumerate(values)
    ] + [
        _metrics("nmt_en_de", "teacher", a, 12.0, seed=s)
        for a in (0.0, 0.1)
        for s in range(3)
    ]
    (sentence,) = nmt_headline([parse_bleu_run(r, f"r{i}") for i, r in enumerate(runs)])
    mean, half = 1.5, 4.3027 * 0.5 / math.sqrt(3)  # t_{0.975, 2}, sd of 1, 2, 1.5
    assert f"helped at T = 1 (+{mean:.2f} BLEU, 95 % interval +{mean - half:.2f}" in (
        sentence
    )
    assert "made no clear difference at T = 64 (+0.00 BLEU" in sentence
    assert sentence.endswith("the paper's advice holds on this run.")
    one_seed = [r for r in runs if r["seed"] == 0]  # the demo's case: no interval
    (sentence,) = nmt_headline(
        [parse_bleu_run(r, f"r{i}") for i, r in enumerate(one_seed)]
    )
    assert "changed BLEU by +1.00 at T = 1 (one seed, no interval)" in sentence
    assert sentence.endswith("this run cannot tell whether the paper's advice holds.")
