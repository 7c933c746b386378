"""The lab, part 2: measuring retrieval quality. Imports the run time; the run time never
imports it.

    metrics.py       rankings, AP, micro-AP
    benchmarks/      one module per benchmark, the same `evaluate(similarities)` shape
    features.py      frame features: read (.npz, HDF5), compute from videos, cache, embed
    score.py         embeddings -> similarities -> a benchmark's metrics
    demo_corpus.py   the demo corpus builder (real media and near-duplicate copies)
    cli.py           `python -m engine evaluate`
"""
