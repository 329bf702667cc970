"""Joint subword model (sentencepiece BPE) over the source and target training text.

sentencepiece works on raw, untokenised text and its decoding is exact, so fairseq's
``--post-process sentencepiece`` output is already detokenised: sacrebleu scores it
against the raw references with its own tokeniser (RayeRen's recipe,
docs/recipes.md#nmt, used Moses tokenisation + subword-nmt and BLEU on tokenised text;
see lskd.nmt.bleu).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)


def train_bpe(
    inputs: Sequence[Path], model_prefix: Path, vocab_size: int, seed: int = 0
) -> Path:
    """Train a joint BPE model on ``inputs``; returns ``<model_prefix>.model``."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            input=",".join(str(p) for p in inputs),
            model_prefix=str(model_prefix),
            vocab_size=vocab_size,
            model_type="bpe",
            character_coverage=1.0,
            # fairseq adds its own <s>, <pad>, </s>, <unk>: only unk is kept here
            bos_id=-1,
            eos_id=-1,
            unk_id=0,
            num_threads=1,
            minloglevel=2,
            hard_vocab_limit=False,  # small corpora: fewer pieces than asked is fine
        )
    except RuntimeError as err:
        raise DataError(f"{model_prefix}.model: sentencepiece failed ({err})") from None
    return Path(f"{model_prefix}.model")


def encode_file(model: Path, src: Path, dst: Path) -> int:
    """Write ``src`` as space-separated pieces to ``dst``; returns the piece count."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(model))
    lines = Path(src).read_text(encoding="utf-8").splitlines()
    pieces = processor.encode(lines, out_type=str)
    with atomic_path(dst) as tmp:
        tmp.write_text("".join(" ".join(p) + "\n" for p in pieces), encoding="utf-8")
    return sum(len(p) for p in pieces)
