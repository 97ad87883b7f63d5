"""Failpoints: a process exits abruptly at a named point when ``SENTINEL_FAILPOINT`` names it.

Reliability tests use them to crash a real worker exactly between two steps (for example
between an alert's commit and its produce), which a kill from outside can only hit by luck.
Unset, a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
EXIT_CODE = 86


def failpoint(name: str) -> None:
    if os.environ.get("SENTINEL_FAILPOINT") == name:
        log.critical("failpoint %s: exiting now", name)
        logging.shutdown()
        os._exit(EXIT_CODE)
