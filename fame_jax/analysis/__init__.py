"""Analysis of finished runs: result tables, fit curves, buckets, score scale.

Each module reads what training and ``evaluate.py --export`` wrote (results/,
export folders, checkpoints) and has a ``main(argv)`` that ``scripts/<name>.py``
calls. ``make_tables`` writes docs/results.md and the README table blocks.
"""
