"""fairseq plugin of lskd, loaded with ``--user-dir <this directory>``: registers the
word-level KD criterion ``lskd_word_kd`` (docs/recipes.md#nmt-word-level-kd-loss).

fairseq imports this directory as a top-level module; the absolute import below makes
both names share one criterion module, so the criterion is registered once even when
lskd imported it first.
"""

from lskd.nmt.lskd_fairseq import word_kd  # noqa: F401  (registers the criterion)
