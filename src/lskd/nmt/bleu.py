"""BLEU by sacrebleu on detokenised output, with its signature (RayeRen's recipe,
docs/recipes.md#nmt, used fairseq's tokenised BLEU; lskd reports sacrebleu's, comparable
across tokenisers)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lskd.errors import DataError

_D_LINE = re.compile(r"^D-(\d+)\t[^\t]*\t?(.*)$")


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, Any]:
    """sacrebleu corpus BLEU (default 13a tokeniser, exp smoothing) of one reference
    per hypothesis: score, signature string and the statistics behind the score."""
    from sacrebleu.metrics import BLEU

    if len(hyps) != len(refs):
        raise DataError(f"{len(hyps)} hypotheses for {len(refs)} references")
    metric = BLEU()
    score = metric.corpus_score(list(hyps), [list(refs)])
    return {
        "bleu": float(score.score),
        "signature": str(metric.get_signature()),
        "precisions": [float(p) for p in score.precisions],
        "bp": float(score.bp),
        "sys_len": int(score.sys_len),
        "ref_len": int(score.ref_len),
    }


def read_hypotheses(path: Path, n: int) -> tuple[list[str], int]:
    """Detokenised hypotheses (fairseq-generate ``D-<id>`` lines) in test order; a
    sentence fairseq did not translate counts as empty. Returns (hyps, missing)."""
    hyps: dict[int, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _D_LINE.match(line)
        if match:
            hyps[int(match.group(1))] = match.group(2).strip()
    if any(i >= n for i in hyps):
        raise DataError(f"{path}: sentence ids beyond the {n} test sentences")
    return [hyps.get(i, "") for i in range(n)], n - len(hyps)
