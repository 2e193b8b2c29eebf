"""Logging for `rag serve`: uvicorn's own setup plus the service's loggers.

The access log (logger ``api.access``) is one JSON object per line on stdout; uvicorn's own
access log is turned off in its favour. Headers are never logged (so neither is a token).
"""

from __future__ import annotations

import copy
from typing import Any

from uvicorn.config import LOGGING_CONFIG


def log_config(level: str = "info") -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["plain"] = {"format": "%(message)s"}
    config["formatters"]["service"] = {
        "format": "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
    }
    config["handlers"]["access_json"] = {
        "class": "logging.StreamHandler",
        "formatter": "plain",
        "stream": "ext://sys.stdout",
    }
    config["handlers"]["service"] = {
        "class": "logging.StreamHandler",
        "formatter": "service",
        "stream": "ext://sys.stderr",
    }
    upper = level.upper()
    config["loggers"]["api.access"] = {
        "handlers": ["access_json"],
        "level": upper,
        "propagate": False,
    }
    for name in ("api", "rag", "index"):
        config["loggers"][name] = {"handlers": ["service"], "level": upper, "propagate": False}
    return config
