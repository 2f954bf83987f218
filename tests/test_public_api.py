"""The curated top-level API: every name in mikey.__all__ resolves, and `import mikey` stays light."""

from __future__ import annotations

import subprocess
import sys

import mikey


def test_every_public_name_resolves() -> None:
    for name in mikey.__all__:
        assert getattr(mikey, name) is not None, name
    assert mikey.PskInitiator.__module__ == "mikey.modes.psk"
    assert "SakkeResponder" in dir(mikey)


def test_all_lists_every_lazy_name() -> None:
    assert set(mikey._LAZY) <= set(mikey.__all__)


def test_unknown_name_is_attribute_error() -> None:
    try:
        mikey.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_import_does_not_load_the_modes() -> None:
    code = "import sys, mikey; print(sorted(m for m in sys.modules if m.startswith('mikey.modes')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_py_typed_marker_shipped() -> None:
    from importlib.resources import files

    assert files("mikey").joinpath("py.typed").is_file()
