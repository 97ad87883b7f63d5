"""``python -m agents.cli``: the ``sentinel`` command without its console script (what the stack and tests start)."""

from agents.cli import app

app()
