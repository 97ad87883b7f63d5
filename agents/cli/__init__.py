"""The ``sentinel`` command: the one entry point for people and scripts, one module per command group.

The library never imports its CLI (as faust keeps ``faust/cli`` apart): these modules import the rest of the
house, nothing imports them. Each module registers its commands on ``app`` when imported, in this order, which
is the order of ``sentinel --help``.
"""

# isort: off
from agents.cli.common import app
from agents.cli import stream, models, alerts, companies, desk, ops  # noqa: F401,E402
# isort: on

__all__ = ["app"]
