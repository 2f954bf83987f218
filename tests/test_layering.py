"""The import graph of `mikey` points down only (DESIGN.md, "The shape"), and has no cycle.

Every module under src/mikey is parsed with `ast`; every import counts, including those
inside functions and under ``if TYPE_CHECKING``.  ``from package import name`` is an
edge to ``package.name`` when that is a module, else to the package itself.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "mikey"

#: The layers from the bottom up; a module may import only from its own layer or those below.
#: ``stores`` holds what the modes are handed (credentials, the replay cache): it sits on crypto.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("mikey.constants", "mikey.errors", "mikey.identities", "mikey._*")),
    ("wire", ("mikey.wire", "mikey.wire.*")),
    ("crypto", ("mikey.crypto", "mikey.crypto.*")),
    ("stores", ("mikey.keystore", "mikey.keystore.*", "mikey.replay", "mikey.replay_*")),
    ("modes", ("mikey.modes", "mikey.modes.*")),
    (
        "edges",
        (
            "mikey",
            "mikey.__main__",
            "mikey.session",
            "mikey.srtp",
            "mikey.sdp",
            "mikey.rtsp",
            "mikey.offer_answer",
            "mikey.capture",
            "mikey.kms",
            "mikey.kms.*",
            "mikey.sip",
            "mikey.sip.*",
            "mikey.cli",
            "mikey.cli.*",
        ),
    ),
)
#: Layers that are side by side rather than stacked: neither imports the other.
SIBLINGS = {("crypto", "wire")}
#: The modules of mikey.modes every method may share; the rest are one module per method.
#: ``dhbase`` is the Diffie-Hellman exchange skeleton DH and DH-HMAC share.
SHARED_MODE_MODULES = {"mikey.modes", "mikey.modes.base", "mikey.modes.results", "mikey.modes.keytransport",
                       "mikey.modes.signing", "mikey.modes.dhbase"}
#: Layers that never read a clock (DESIGN.md: "No keys, clocks or policy"; the clock is a parameter).
CLOCK_FREE = ("mikey.wire", "mikey.identities")


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    """``{dotted name: (path, is_package)}`` for every module under src/mikey."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, (path, _) in MODULES.items()}


def _targets(name: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        package = name.split(".") if is_package else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, node.module] if node.module else package)
    else:
        base = node.module or ""
    names_only = False
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in MODULES:
            yield sub
        else:
            names_only = True
    if names_only:
        yield base


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, (_, is_package) in MODULES.items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(TREES[name]):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges.update(t for t in _targets(name, is_package, node) if t == "mikey" or t.startswith("mikey."))
        edges.discard(name)
    return graph


GRAPH = _graph()


def _matches(name: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


def layer_of(name: str) -> int:
    """The index in LAYERS of *name*; exact names win over ``prefix*`` patterns."""
    for exact in (True, False):
        for index, (_, patterns) in enumerate(LAYERS):
            if any(_matches(name, p) for p in patterns if p.endswith("*") is not exact):
                return index
    raise LookupError(name)


def test_layer_map() -> None:
    assert layer_of("mikey.__main__") == layer_of("mikey.cli.main") == len(LAYERS) - 1
    assert layer_of("mikey._lru") == layer_of("mikey.identities") == 0
    assert layer_of("mikey.keystore") < layer_of("mikey.modes.psk") < layer_of("mikey.session")


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for name in MODULES:
        try:
            layer_of(name)
        except LookupError:
            unplaced.append(name)
    assert not unplaced, f"add these modules to LAYERS in {__file__}: {unplaced}"


def test_the_walk_sees_imports_everywhere() -> None:
    """The parser follows relative, absolute, in-function and TYPE_CHECKING imports (guards the test)."""
    assert "mikey.wire.payloads.base" in GRAPH["mikey.wire.payloads.rfc3830"]  # from .base import ...
    assert "mikey.constants" in GRAPH["mikey.crypto.dh"]  # from mikey import constants
    assert "mikey.modes.psk" in GRAPH["mikey"]  # under TYPE_CHECKING
    assert "mikey.cli" not in GRAPH["mikey.cli.main"]  # from . import decode: submodules only
    tree = ast.parse("def f():\n    from ..wire import Message\n")
    node = tree.body[0].body[0]  # type: ignore[attr-defined]
    assert list(_targets("mikey.crypto.kemac", False, node)) == ["mikey.wire"]


def test_no_upward_import() -> None:
    names = [n for n, _ in LAYERS]
    upward = []
    for source, targets in sorted(GRAPH.items()):
        low = layer_of(source)
        for target in sorted(targets):
            high = layer_of(target)
            pair = (names[low], names[high])
            if high > low or pair in SIBLINGS or pair[::-1] in SIBLINGS:
                upward.append(f"{source} ({names[low]}) -> {target} ({names[high]})")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_payload_families_import_only_base() -> None:
    """wire/payloads: each RFC family module imports, of the wire layer, only payloads/base.py."""
    bad = []
    for name, targets in GRAPH.items():
        if name.startswith("mikey.wire.payloads.") and name != "mikey.wire.payloads.base":
            bad += [f"{name} -> {t}" for t in targets if t.startswith("mikey.wire") and t != "mikey.wire.payloads.base"]
    assert not bad, "\n".join(sorted(bad))


def test_clock_free_layers_read_no_clock() -> None:
    """wire and identities take the time as a parameter: no ``time`` import, no ``now()``/``today()``."""
    bad = []
    for name, tree in TREES.items():
        if not any(name == p or name.startswith(p + ".") for p in CLOCK_FREE):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name == "time" for a in node.names):
                bad.append(f"{name}: import time")
            elif isinstance(node, ast.ImportFrom) and node.module == "time":
                bad.append(f"{name}: from time import ...")
            elif isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
                bad.append(f"{name}: .{node.attr}")
    assert not bad, "\n".join(bad)


def test_no_mode_imports_another_mode() -> None:
    """A method module (psk, pk, dh, ...) imports only the shared mode modules, never another method module."""
    bad = []
    for name, targets in sorted(GRAPH.items()):
        if name.startswith("mikey.modes.") and name not in SHARED_MODE_MODULES:
            bad += [f"{name} -> {t}" for t in sorted(targets)
                    if t.startswith("mikey.modes.") and t not in SHARED_MODE_MODULES]
    assert not bad, "\n".join(bad)
