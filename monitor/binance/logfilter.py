"""Keep signatures and API keys out of third-party log lines.

httpx logs every request URL at INFO (a signed query ends in `signature=...`) and websockets
logs whole frames at DEBUG (a subscribe frame carries `apiKey` and `signature`). Rather than
ask every operator to tune those loggers, the Binance clients install this filter on them.
"""

from __future__ import annotations

import logging
import re

from monitor.core.redaction import scrub_text

_PATTERNS = [
    (re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE), r"\1<redacted>"),
    # no closing quote needed: websockets cuts long frames short in its debug lines
    (re.compile(r"(\"(?:signature|apiKey)\"\s*:\s*\")[^\"]*", re.IGNORECASE),
     r"\1<redacted>"),
    (re.compile(r"(x-mbx-apikey['\"]?\s*[:,]\s*b?['\"])[^'\"]*", re.IGNORECASE),
     r"\1<redacted>"),
]
LOGGERS = ("httpx", "httpcore", "websockets", "websockets.client", "uvicorn", "uvicorn.error",
           "uvicorn.access")


def scrub(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return scrub_text(text)  # any secret-named parameter or key-shaped value (redaction.py)


class SecretFilter(logging.Filter):
    """Rewrites a record's message with signatures and keys masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = SecretFilter()


def install() -> None:
    """Attach the filter to the loggers that see raw requests and frames, and to the root
    logger's handlers, which every record of Keywatch's own loggers reaches (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
