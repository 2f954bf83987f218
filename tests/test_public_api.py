"""The curated top-level API: every name in mikey.__all__ resolves, and `import mikey` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mikey


def test_every_public_name_resolves() -> None:
    for name in mikey.__all__:
        assert getattr(mikey, name) is not None, name
    assert mikey.PskInitiator.__module__ == "mikey.modes.psk"
    assert "SakkeResponder" in dir(mikey)


def _init_tree() -> ast.Module:
    return ast.parse(Path(mikey.__file__).read_text(encoding="utf-8"))


def _type_checking_imports(tree: ast.Module) -> dict[str, str]:
    """``{name: module}`` of the ``if TYPE_CHECKING:`` block of mikey/__init__.py."""
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    out: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname is None and alias.name not in out, alias.name
            out[alias.name] = f"mikey.{node.module}"
    return out


def _eager_imports(tree: ast.Module) -> set[str]:
    """Names mikey/__init__.py imports from its own package at module level."""
    return {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 1 for a in n.names}


def test_all_lazy_table_and_typing_block_agree() -> None:
    """__all__ = the eager imports + the lazy table; the TYPE_CHECKING block imports exactly the lazy
    names, each from the module the lazy table loads it from."""
    tree = _init_tree()
    typing_block = _type_checking_imports(tree)
    assert typing_block == mikey._LAZY
    assert len(mikey.__all__) == len(set(mikey.__all__))
    assert set(mikey.__all__) == {"__version__"} | _eager_imports(tree) | set(mikey._LAZY)
    assert not _eager_imports(tree) & set(mikey._LAZY)


def test_consistency_check_catches_a_missing_name() -> None:
    """The helpers above see what they must: a lazy name left out of the typing block is noticed."""
    tree = _init_tree()
    block = next(n for n in tree.body if isinstance(n, ast.If))
    block.body = [n for n in block.body if "validate" not in ast.unparse(n)]
    assert "validate" in mikey._LAZY and "validate" not in _type_checking_imports(tree)


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
