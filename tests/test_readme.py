"""The README's promises: its Python snippets run as written, its Quick start is two commands."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_library_tour_runs() -> None:
    """Every ```python block, in order, in one namespace (the tour builds on itself)."""
    code = blocks("python")
    assert len(code) >= 5
    namespace: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for i, block in enumerate(code):
            try:
                exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the failure message names the block
                pytest.fail(f"README python block {i + 1} fails: {exc!r}\n{block}")
    text = out.getvalue()
    assert "PSK_INIT" in text
    assert "a=key-mgmt:mikey " in text and "KeyMgmt: prot=mikey" in text


def test_quick_start_is_two_commands() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("## Quick start") : readme.index("## Library tour")]
    [commands] = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert commands.splitlines() == ["pip install . && mikey demo", "pip install -e '.[test]' && python -m pytest"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    assert "pip install -e '.[test]' && python -m pytest" in ci
