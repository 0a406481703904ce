"""Secret values, and the one function that keeps them out of every output.

Logs, reports, labels, annotations, audit records and error messages all pass through
``Secrets.redact`` (``redact_text`` for plain text) so that a secret never leaves the
process in clear text. What counts as secret, by kind rather than by luck of naming:

- every value registered with ``Secrets.add`` (passwords, tokens, env-file secrets);
- every value of a Kubernetes ``Secret``'s ``data``/``stringData`` — from manifests, Helm
  charts or generated — masked in any structure that holds the object, and registered
  (plain and base64) with ``add_manifest`` so it is masked in diffs and free text too;
- values held under a key that looks like a password, token or secret;
- credentials inside URLs (``https://user:pass@host``, DSNs, registry URLs): the user
  info is dropped and secret-looking query values masked (``clean_url``), in any text.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[-_]?key|private[-_]?key|credentials?|authorization)$"
    r"|^(pass(word|wd)?|secret|token|authorization|credentials?)([-_]|$)",
    re.IGNORECASE,
)
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words everywhere
SECRET_KINDS = {"Secret"}
SECRET_FIELDS = ("data", "stringData")
# scheme://USERINFO@ in any text (userinfo: no '/', '@' or white space before the '@')
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@?#'\"<>]+@")
_QUERY_VALUE = re.compile(r"(?P<key>[?&;][A-Za-z0-9_.\-]+=)(?P<value>[^&;#\s'\"<>]+)")


def looks_secret(key: str) -> bool:
    """True for keys such as ``DB_PASSWORD``, ``api_token``, ``Authorization``."""
    return bool(SECRET_KEY.search(key.replace(".", "_")))


def secret_field(kind: str | None, path: str) -> bool:
    """True when ``path`` (``data.url``, ``spec.env[0].value``...) of an object of ``kind``
    holds a secret: any field under a Secret's data/stringData, or a secret-looking key."""
    parts = [p for p in re.split(r"[.\[\]]+", path) if p]
    if kind in SECRET_KINDS and parts and parts[0] in SECRET_FIELDS:
        return True
    return any(looks_secret(p) for p in parts)


def clean_url(url: str) -> str:
    """``url`` without its user info (``user:password@``, a token) and with secret-looking
    query values masked; ``***`` when it cannot be parsed."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        query = urlencode([(k, MASK if looks_secret(k) else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _clean_urls_in_text(text: str) -> str:
    if "://" not in text and "=" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: m.group("scheme"), text)
    if "=" in text:
        text = _QUERY_VALUE.sub(lambda m: m.group("key") + MASK
                                if looks_secret(m.group("key")[1:-1]) else m.group(0), text)
    return text


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

    def add_manifest(self, obj: Any) -> None:
        """Register every value of a Kubernetes Secret (``stringData`` as written, ``data``
        both base64 and decoded); other objects are ignored."""
        if not isinstance(obj, dict) or obj.get("kind") not in SECRET_KINDS:
            return
        for value in (obj.get("stringData") or {}).values():
            if value is not None:
                self.add(str(value))
                self.add(base64.b64encode(str(value).encode()).decode())
        for value in (obj.get("data") or {}).values():
            if value is None:
                continue
            self.add(str(value))
            with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
                self.add(base64.b64decode(str(value), validate=True).decode())

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __len__(self) -> int:
        return len(self._values)

    def redact_text(self, text: str) -> str:
        """Replace every secret value and every URL credential inside ``text``."""
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return _clean_urls_in_text(text)

    def redact(self, value: Any, key: str | None = None) -> Any:
        """Return a copy of ``value`` with secrets masked, recursing into containers."""
        if key is not None and looks_secret(key) and value not in (None, "", MASK):
            return MASK
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            if value.get("kind") in SECRET_KINDS:
                value = {k: ({f: MASK for f in v} if k in SECRET_FIELDS and isinstance(v, dict)
                             else v) for k, v in value.items()}
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
