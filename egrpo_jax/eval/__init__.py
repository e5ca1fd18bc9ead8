"""Evaluation and analysis.

metrics.py   score rollouts (correct, F1, entities matched) and summarise: Pass@1, Pass@k, tool calls...
analysis.py  the paper's entity analysis, match-rate histograms, training-curve plots
report.py    per-run report folder (markdown, JSON, PNG) and multi-seed comparison tables
runner.py    evaluate(): rollouts through the agent loop and the sampling engine, then metrics
"""
