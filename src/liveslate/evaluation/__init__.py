"""Evaluation and decision: every policy compared on held-out logs, the champion chosen.

- ``evaluate``: ranking metrics and off-policy estimates of a set of policies on one split;
- ``backtest``: the same, rolling origin by day (retrain on the past, test on the next day);
- ``policy_set``: which policies are evaluated and where each is loaded from;
- ``select``: the champion rule as a pure function;
- ``registry_ops``: the MLflow registry (alias ``champion``, versions, rollback);
- ``plots`` / ``report``: figures and the self-contained HTML report.
"""
