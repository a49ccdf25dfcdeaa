"""Hyper-parameter search on Ray Tune (`python -m src.tune`): search spaces, the trial, reporting, Optuna.

Everything that imports Ray lives here; `src.train` never does. Ray is the optional `tune` extra.
"""
