"""Neural machine translation (PAPER.md §3.6, Table 5): corpus, BPE, fairseq driving,
the word-level KD criterion (a fairseq `--user-dir` plugin), sacreBLEU, Table 5.

Nothing here imports fairseq at module level: `lskd.nmt.kd` (the loss) and
`lskd.nmt.corpus` work without it.
"""
