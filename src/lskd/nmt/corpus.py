"""Parallel corpora for EN→X translation, split by English source string.

Two sources:

- ``libreoffice``: LibreOffice's human UI translations from Debian's
  ``libreoffice-l10n-<lang>`` packages (extracted with ``dpkg-deb -x`` by
  scripts/setup.sh). Every ``.mo`` catalog maps an English message (after its context)
  to its translation, so German and Russian are aligned through the same English
  strings. Mnemonic markers (``~``, ``_File``) are removed, whitespace is collapsed,
  untranslated entries are dropped, one translation is kept per English source (the
  most frequent, ties broken alphabetically), the word-count filter (`keep_pairs`)
  drops sources, and the remaining sources are split by a seeded
  hash of the English string: the split of a sentence does not depend on the target
  language, and no source string crosses splits.
- ``files``: local line-aligned raw files (plain text, IWSLT ``train.tags.*`` with XML
  meta lines, or IWSLT ``*.xml`` with ``<seg>`` lines), each filtered by word count
  as it is read. Validation is every N-th
  training line unless validation files are given; the test files stay as given and
  every training or validation pair whose English source also occurs in the test split
  is dropped.
"""

from __future__ import annotations

import gettext
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SOURCE = "en"
_MNEMONIC = re.compile(r"~|(?<![A-Z0-9_])_(?=[^\W\d_])")
_IWSLT_META = re.compile(
    r"^\s*<(url|talkid|keywords|speaker|reviewer|translator|/?doc)"
)
_IWSLT_SEG = re.compile(r"<seg[^>]*>(.*)</seg>")
_IWSLT_TAGS = re.compile(r"</?(title|description)>")

Pairs = list[tuple[str, str]]


def clean(text: str) -> str:
    """Remove UI mnemonic markers and collapse whitespace (newlines included)."""
    return " ".join(_MNEMONIC.sub("", text).split())


def libreoffice_catalog(root: Path, lang: str) -> dict[str, str]:
    """English source -> translation from every ``<lang>/LC_MESSAGES/*.mo`` under
    ``root`` (one translation per source: the most frequent, then alphabetical)."""
    files = sorted(Path(root).rglob(f"resource/{lang}/LC_MESSAGES/*.mo"))
    if not files:
        raise DataError(
            f"{root}: no resource/{lang}/LC_MESSAGES/*.mo (run scripts/setup.sh, which "
            f"extracts Debian's libreoffice-l10n-{lang})"
        )
    seen: dict[str, Counter] = {}
    for path in files:
        try:
            with open(path, "rb") as fh:
                catalog = gettext.GNUTranslations(fh)._catalog
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: not a readable .mo catalog ({err})") from None
        for key, value in catalog.items():
            if not isinstance(key, str) or not key:
                continue  # plural forms and the header
            en, tgt = clean(key.rpartition("\x04")[2]), clean(value)
            if en and tgt and en != tgt:
                seen.setdefault(en, Counter())[tgt] += 1
    return {
        en: min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for en, counts in seen.items()
    }


def read_lines(path: Path) -> list[str]:
    """Sentences of one raw file: plain text, IWSLT train.tags (meta lines dropped) or
    IWSLT .xml (the ``<seg>`` contents). An empty file is an error naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    lines = text.splitlines()
    if path.suffix == ".xml":
        lines = [m.group(1) for m in map(_IWSLT_SEG.search, lines) if m]
    elif ".tags." in path.name:
        lines = [_IWSLT_TAGS.sub("", x) for x in lines if not _IWSLT_META.match(x)]
    lines = [" ".join(x.split()) for x in lines]
    if not any(lines):
        raise DataError(f"{path}: empty file (no sentences)")
    return lines


def read_parallel(src: Path, tgt: Path) -> Pairs:
    """Line-aligned pairs of two raw files; unequal counts name both files."""
    a, b = read_lines(src), read_lines(tgt)
    if len(a) != len(b):
        raise DataError(
            f"{tgt}: {len(b)} sentences but {src} has {len(a)} (files must be "
            "line-aligned)"
        )
    return [(x, y) for x, y in zip(a, b, strict=True) if x and y]


def _rank(text: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\x00{text}".encode()).hexdigest()


def split_by_source(
    catalog: dict[str, str], valid_size: int, test_size: int, seed: int
) -> dict[str, Pairs]:
    """Test = the ``test_size`` English sources of lowest seeded hash, valid = the next
    ``valid_size``, train = the rest (each list sorted by that hash)."""
    if valid_size + test_size >= len(catalog):
        raise DataError(
            f"nmt.corpus.test_size: {len(catalog)} sources after the word-count "
            f"filter, too few for valid_size {valid_size} + test_size {test_size} "
            "+ training"
        )
    order = sorted(catalog, key=lambda en: _rank(en, seed))
    cuts = {"test": order[:test_size], "valid": order[test_size:][:valid_size]}
    cuts["train"] = order[test_size + valid_size :]
    return {s: [(en, catalog[en]) for en in cuts[s]] for s in SPLITS}


def _dedup(pairs: Pairs, banned: set[str]) -> Pairs:
    seen: set[tuple[str, str]] = set()
    out = []
    for pair in pairs:
        if pair[0] not in banned and pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


def files_splits(
    spec: dict[str, Any],
    tgt: str,
    limits: tuple[int, int | None, bool] = (1, None, False),
) -> dict[str, Pairs]:
    """Splits of local raw files: ``spec`` has ``train`` (a path template with
    ``{lang}``), ``valid`` (template or null: every ``valid_every``-th training line,
    counted after the `keep_pairs` filter with ``limits``, as fairseq's IWSLT'14
    script does) and ``test`` (list of templates, concatenated)."""

    def pair(template: str) -> Pairs:
        pairs = read_parallel(
            Path(template.format(lang=SOURCE)), Path(template.format(lang=tgt))
        )
        kept = keep_pairs(pairs, *limits)
        if not kept:
            raise DataError(f"{template}: no pair left after the word-count filter")
        return kept

    train = pair(spec["train"])
    if spec.get("valid"):
        valid = pair(spec["valid"])
    else:
        every = spec["valid_every"]
        valid = [p for i, p in enumerate(train, 1) if i % every == 0]
        train = [p for i, p in enumerate(train, 1) if i % every != 0]
    test = [p for template in spec["test"] for p in pair(template)]
    test_sources = {en for en, _ in test}
    valid = _dedup(valid, test_sources)
    train = _dedup(train, test_sources | {en for en, _ in valid})
    return {"train": train, "valid": valid, "test": test}


def keep_pairs(
    pairs: Pairs, min_words: int, max_words: int | None, lowercase: bool
) -> Pairs:
    """The pairs whose English side has ``min_words`` to ``max_words`` words, both
    sides lower-cased if ``lowercase``; applied before any split, so that the splits
    have their configured sizes and lower-casing cannot make two splits share a
    source."""
    longest = max_words or float("inf")
    if lowercase:
        pairs = [(en.lower(), t.lower()) for en, t in pairs]
    return [p for p in pairs if min_words <= len(p[0].split()) <= longest]


def _keep_catalog(catalog: dict[str, str], spec: dict[str, Any]) -> dict[str, str]:
    """`keep_pairs` of a catalog; sources that lower-casing merges keep the
    translation of the first original source in sorted order."""
    kept: dict[str, str] = {}
    for en, tgt in keep_pairs(sorted(catalog.items()), *_limits(spec)):
        kept.setdefault(en, tgt)
    return kept


def _limits(spec: dict[str, Any]) -> tuple[int, int | None, bool]:
    return spec["min_words"], spec.get("max_words"), spec["lowercase"]


def prepare_corpus(corpus: dict[str, Any], pair: str, out_dir: Path) -> dict[str, Any]:
    """Write ``out_dir/{train,valid,test}.{en,<tgt>}`` for ``pair`` (``en_de``) from
    the ``nmt.corpus`` config section; return the split sizes and provenance."""
    src, tgt = pair.split("_")
    if src != SOURCE:
        raise DataError(f"nmt.pairs: {pair!r} must translate from English")
    if corpus["kind"] == "libreoffice":
        catalog = _keep_catalog(libreoffice_catalog(Path(corpus["root"]), tgt), corpus)
        splits = split_by_source(
            catalog, corpus["valid_size"], corpus["test_size"], corpus["split_seed"]
        )
        origin = f"Debian libreoffice-l10n-{tgt} .mo catalogs under {corpus['root']}"
    else:
        if pair not in corpus["files"]:
            raise DataError(f"nmt.corpus.files: no entry for pair {pair!r}")
        splits = files_splits(
            {**corpus["files"][pair], "valid_every": corpus["valid_every"]},
            tgt,
            _limits(corpus),
        )
        origin = f"local files of nmt.corpus.files.{pair}"
    for name, pairs in splits.items():
        if not pairs:
            raise DataError(f"corpus: the {name} split is empty after filtering")
    if corpus["max_train"] is not None:
        splits["train"] = splits["train"][: corpus["max_train"]]
    for name, pairs in splits.items():
        for i, lang in enumerate((src, tgt)):
            write_lines(Path(out_dir) / f"{name}.{lang}", [p[i] for p in pairs])
    sizes = {name: len(pairs) for name, pairs in splits.items()}
    log.info("corpus %s: %s (%s)", pair, sizes, origin)
    return {"pair": pair, "sizes": sizes, "origin": origin}


def write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
