"""Logging for Sentinel's processes: a quiet console and a complete log file.

The console shows Sentinel's own records (logged from its packages ``agents``, ``infra``,
``models``, ``schemas``, ``bench``) from ``log_level`` up, and the libraries' (Faust, mode, aiokafka,
kafka-python, urllib3 ...) only from WARNING up, unless ``verbose`` is set. The file
``<state_dir>/logs/<process>.log`` keeps every record from ``log_level`` up. With
``log_format=json`` both carry one JSON object per line: timestamp, level, logger, message.
"""

from __future__ import annotations

import logging
import logging.config
import os
from pathlib import Path

from infra.settings import PROJECT_ROOT, Settings

# Sentinel's packages; a record is Sentinel's own when it was logged from a file inside one of them. The
# logger name is not enough: Faust's services log under their subclass's module (agents.app, agents.transport).
OWN_PACKAGES = tuple(str(PROJECT_ROOT / name) + os.sep for name in ("agents", "infra", "models", "schemas", "bench"))
LOG_FILE_BYTES = 20 * 1024 * 1024  # per file; three old files are kept


def is_own(record: logging.LogRecord) -> bool:
    return record.pathname.startswith(OWN_PACKAGES)


class ConsoleFilter(logging.Filter):
    """Lets Sentinel's records through, and the libraries' only from WARNING up (all when ``verbose``)."""

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or record.levelno >= logging.WARNING or is_own(record)


def log_file(settings: Settings, process: str) -> Path:
    return settings.state_dir / "logs" / f"{process}.log"


def logging_config(settings: Settings, process: str = "worker") -> dict:
    """A ``logging.config.dictConfig`` dict for one process (``process`` names its log file)."""
    path = log_file(settings, process)
    path.parent.mkdir(parents=True, exist_ok=True)
    formatter = "json" if settings.log_format == "json" else "text"
    level = settings.log_level.upper()
    return {
        "version": 1,
        # loggers made at import time (ours and the libraries') must keep working
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                     "fmt": "%(levelname)s %(name)s %(message)s", "timestamp": True,
                     "rename_fields": {"levelname": "level", "name": "logger"}},
        },
        "filters": {"console": {"()": ConsoleFilter, "verbose": settings.verbose}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": formatter,
                        "filters": ["console"], "level": level},
            "file": {"class": "logging.handlers.RotatingFileHandler", "filename": str(path), "encoding": "utf-8",
                     "maxBytes": LOG_FILE_BYTES, "backupCount": 3, "formatter": formatter,
                     "level": level},
        },
        # handler levels too: Faust's spinner sets the root logger to DEBUG when log_level is WARNING or above
        "root": {"level": level, "handlers": ["console", "file"]},
    }


def configure_logging(settings: Settings, process: str = "worker") -> Path:
    """Configure this process's logging from the settings; returns the log file's path."""
    logging.config.dictConfig(logging_config(settings, process))
    return log_file(settings, process)


def worker_logging(settings: Settings) -> dict:
    """Keyword arguments for ``faust.Worker`` so it logs as ``configure_logging`` does.

    mode's Worker clears the root handlers at start and applies ``logging_config`` with
    dictConfig (mode.utils.logging.setup_logging), instead of its own colour console handler.
    ``loghandlers`` cannot be passed: faust.Worker sets it from ``app.conf.loghandlers``.
    """
    return {"logging_config": logging_config(settings, "worker")}
