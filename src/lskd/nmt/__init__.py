"""Neural machine translation (docs/recipes.md#nmt): corpus, BPE, fairseq driving,
the word-level KD criterion (a fairseq `--user-dir` plugin), sacreBLEU, Table 5.

Nothing here imports fairseq at module level: `lskd.nmt.kd` (the loss) and
`lskd.nmt.corpus` work without it.
"""

ARCH = "transformer"  # the architecture name in NMT run folders, metrics and Table 5
