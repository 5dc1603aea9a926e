"""Console logging for plain scripts (like the seeds'), which never configure logging themselves."""

from __future__ import annotations

import logging

_MARK = "_unity_mlops_console"


def ensure_console_logging() -> None:
    """Show the pipeline's INFO lines on stderr unless the application configured logging already."""
    logger = logging.getLogger("unity_mlops")
    if logging.getLogger().handlers or any(getattr(h, _MARK, False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    setattr(handler, _MARK, True)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
