"""The env file: one file per app holding all variable information and software versions.

Read at the start of a job, never evaluated by a shell. The format is a strict
subset of POSIX sh assignments, so the same file can still be ``source``-d by a
shell script and mean exactly the same thing::

    # comment lines and blank lines are ignored
    CONTAINER_NAMESPACE=littleman-co         unquoted: A-Z a-z 0-9 and _ . / : @ % + , - = ~ ^
    GREETING='hello, world'                  single quotes: literal, anything but '
    MOTTO="say \\"hi\\""                     double quotes: \\" and \\\\ escapes only; no $ or `
    export NGINX_VERSION=1.25.3              an "export " prefix is allowed
    DB_PASSWORD='s3cr3t'   # secret          "# secret" marks a value secret
    REGISTRY_TOKEN=        # secret          empty + secret: read from the process environment

Keys whose names look like passwords, tokens or secrets are secret automatically.
Secret values are masked in every log, report and error, and never become image labels.
Keys ending in ``_VERSION`` are the app's software versions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelinelib.errors import BadInput
from pipelinelib.secrets import Secrets, looks_secret

KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
UNQUOTED = re.compile(r"[A-Za-z0-9_./:@%+,=~^-]*")
LABEL_PREFIX = "io.pipelinelib.env."


@dataclass(frozen=True)
class EnvEntry:
    """One assignment: its value, whether it is secret, and where it was written."""

    key: str
    value: str
    secret: bool
    line: int


class EnvFile:
    """A parsed env file. Use ``EnvFile.load(path)``."""

    def __init__(self, path: str, entries: dict[str, EnvEntry]):
        self.path = path
        self.entries = entries

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
    ) -> EnvFile:
        """Read and validate ``path``; raise ``BadInput`` naming file and line on any error."""
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadInput("env file not found", source=name) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(
                f"cannot read env file ({exc.__class__.__name__})", source=name
            ) from None
        return cls(name, parse(text, name, os.environ if environ is None else environ))

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str, default: str | None = None) -> str | None:
        entry = self.entries.get(key)
        return entry.value if entry else default

    def require(self, key: str, expected: str = "a value") -> str:
        """The value of ``key``; ``BadInput`` naming the file and key when missing or empty."""
        value = self.get(key)
        if not value:
            raise BadInput("missing key", source=self.path, field=key, expected=expected)
        return value

    def values(self) -> dict[str, str]:
        """Every key and value (secrets included): for build args and job use."""
        return {k: e.value for k, e in self.entries.items()}

    def public(self) -> dict[str, str]:
        """Only the non-secret values: safe for labels and reports."""
        return {k: e.value for k, e in self.entries.items() if not e.secret}

    def secret_values(self) -> list[str]:
        return [e.value for e in self.entries.values() if e.secret and e.value]

    def versions(self) -> dict[str, str]:
        """Software versions: the non-secret ``*_VERSION`` keys."""
        return {k: v for k, v in self.public().items() if k.endswith("_VERSION")}

    def labels(self) -> dict[str, str]:
        """Image labels for the non-secret values (``io.pipelinelib.env.<key>``)."""
        return {f"{LABEL_PREFIX}{k.lower()}": v for k, v in self.public().items()}

    def register_secrets(self, secrets: Secrets) -> None:
        """Add this file's secret values to ``secrets`` so every output masks them."""
        secrets.add(*self.secret_values())


def parse(
    text: str, source: str = "<env>", environ: Mapping[str, str] | None = None
) -> dict[str, EnvEntry]:
    """Parse env-file text; see the module docstring for the format."""
    environ = {} if environ is None else environ
    entries: dict[str, EnvEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, rest = line.partition("=")
        if not sep:
            raise BadInput(
                "not a KEY=VALUE line",
                source=source,
                line=number,
                expected="KEY=VALUE, a comment, or a blank line",
            )
        if not KEY.fullmatch(key):
            raise BadInput(
                f"invalid key {key.strip()[:40]!r}",
                source=source,
                line=number,
                expected="letters, digits and _, not starting with a digit",
            )
        if key in entries:
            raise BadInput(
                f"{key} is set twice (first on line {entries[key].line})",
                source=source,
                line=number,
                expected="each key once",
            )
        value, comment = _split_value(rest, source, number, key)
        secret = comment.lower() == "secret" or looks_secret(key)
        if secret and value == "" and comment.lower() == "secret":
            value = environ.get(key, "")
            if not value:
                raise BadInput(
                    f"{key} is an empty secret and the environment has no {key}",
                    source=source,
                    line=number,
                    expected=f"a value in the file or an environment variable {key}",
                )
        entries[key] = EnvEntry(key, value, secret, number)
    return entries


def _split_value(rest: str, source: str, number: int, key: str) -> tuple[str, str]:
    """Split ``VALUE  # comment`` into the unquoted value and the comment text."""

    def bad(message: str, expected: str) -> BadInput:
        return BadInput(message, source=source, line=number, field=key, expected=expected)

    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise bad("unterminated single quote", "a closing '")
        value, tail = rest[1:end], rest[end + 1 :]
    elif rest.startswith('"'):
        value, tail = _double_quoted(rest, bad)
    else:
        value, _, tail = rest.partition(" ")
        tail = " " + tail if tail else ""
        if not UNQUOTED.fullmatch(value):
            raise bad(
                "unquoted value has characters a shell would interpret",
                "letters, digits and _ . / : @ % + , - = ~ ^, or a quoted value",
            )
    tail = tail.strip()
    if tail and not tail.startswith("#"):
        raise bad(f"unexpected text after the value: {tail[:20]!r}", "nothing, or a # comment")
    return value, tail.lstrip("#").strip()


def _double_quoted(rest: str, bad: object) -> tuple[str, str]:
    out: list[str] = []
    i = 1
    while i < len(rest):
        ch = rest[i]
        if ch == '"':
            return "".join(out), rest[i + 1 :]
        if ch == "\\":
            nxt = rest[i + 1 : i + 2]
            if nxt not in ('"', "\\"):
                raise bad("unsupported escape in double quotes", '\\" or \\\\ only')  # type: ignore[operator]
            out.append(nxt)
            i += 2
            continue
        if ch in "$`":
            raise bad(
                f"{ch!r} in double quotes would be expanded by a shell",  # type: ignore[operator]
                "single quotes for literal text",
            )
        out.append(ch)
        i += 1
    raise bad("unterminated double quote", 'a closing "')  # type: ignore[operator]
