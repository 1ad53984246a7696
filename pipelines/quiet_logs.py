"""Beam's import-time and runner chatter, hidden unless `guetteur -v`: users see our lines, not its."""

import logging


class QuietBeam(logging.Filter):
    """Lets through errors, and everything not logged from Beam's own code."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "apache_beam" not in record.pathname
