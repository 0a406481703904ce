"""The error vocabulary: one text for input that is not UTF-8, wherever it is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelinelib.errors import EXIT_BAD_INPUT, BadInput

# a PNG header: what a wrong artifact upload looks like
NOT_TEXT = b"\x89PNG\r\n\x1a\n\x00\x00"


def _loaders(tmp_path: Path) -> dict[str, tuple[Path, object]]:
    from pipelinelib.migrate.files import load_migration
    from pipelinelib.scan.parsers import load_json
    from pipelinelib.yamlsafe import load_with_lines

    return {"scan report": (tmp_path / "report.json", load_json),
            "migration": (tmp_path / "V1__init.sql", load_migration),
            "yaml": (tmp_path / "deploy.yaml", lambda p: load_with_lines(p.read_bytes(),
                                                                          str(p)))}


@pytest.mark.parametrize("what", ["scan report", "migration", "yaml"])
def test_input_that_is_not_utf8_names_the_first_bad_byte_and_its_file(
        tmp_path: Path, what: str) -> None:
    path, load = _loaders(tmp_path)[what]
    path.write_bytes(NOT_TEXT)
    with pytest.raises(BadInput) as raised:
        load(path)  # type: ignore[operator]
    error = raised.value
    assert error.exit_code == EXIT_BAD_INPUT and error.source == str(path)
    assert "not UTF-8 text (byte 0x89 at offset 0); binary or another encoding" in (
        error.one_line())
    assert error.expected
