"""Secret values, and the one function that keeps them out of every output.

Logs, reports, labels, annotations and error messages all pass through
``Secrets.redact`` so a value marked secret (or held under a key that looks like
a password, token or secret) never leaves the process in clear text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[-_]?key|private[-_]?key|credentials?|authorization)$"
    r"|^(pass(word|wd)?|secret|token|authorization|credentials?)([-_]|$)",
    re.IGNORECASE,
)
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words everywhere


def looks_secret(key: str) -> bool:
    """True for keys such as ``DB_PASSWORD``, ``api_token``, ``Authorization``."""
    return bool(SECRET_KEY.search(key.replace(".", "_")))


class Secrets:
    """A set of values that must never be shown, and a redactor for any structure."""

    def __init__(self, values: Iterable[str] = ()):
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str | None) -> None:
        """Mark values as secret (empty and very short values are ignored)."""
        new = {v for v in values if v and len(v) >= _MIN_SECRET_LEN} - self._values
        if new:
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __len__(self) -> int:
        return len(self._values)

    def redact_text(self, text: str) -> str:
        """Replace every occurrence of a secret value inside ``text``."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def redact(self, value: Any, key: str | None = None) -> Any:
        """Return a copy of ``value`` with secrets masked, recursing into containers."""
        if key is not None and looks_secret(key) and value not in (None, "", MASK):
            return MASK
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {k: self.redact(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return (
                type(value)(self.redact(v) for v in value)
                if not isinstance(value, set)
                else [self.redact(v) for v in value]
            )
        if isinstance(value, BaseException):
            return self.redact_text(str(value))
        return value
