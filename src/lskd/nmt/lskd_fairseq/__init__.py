"""fairseq plugin of lskd, loaded with ``--user-dir <this directory>``: registers the
word-level KD criterion ``lskd_word_kd`` (PAPER.md §2.3)."""

from . import word_kd  # noqa: F401  (registers the criterion)
