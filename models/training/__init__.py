"""Offline work, apart from serving: training (``train``), the data sets and their fixed splits (``datasets``),
distillation and teacher labels (``distillation``), the evaluations (``evaluation``, ``redaction_eval``,
``openings_eval``), and the desk's corrections as training rows (``feedback``). No serving module imports
this package; its commands are in ``agents/cli/models.py``."""
