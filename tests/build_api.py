"""Build the API reference (HTML, from the docstrings) with pdoc: ``python tests/build_api.py [OUTDIR [MODULE...]]``.

OUTDIR defaults to ``build/api``, the modules to :data:`MODULES`. It fails (exit 1, one line per
problem) on any warning of pdoc's (a name in ``__all__`` that does not resolve, an annotation it
cannot read, a module that does not import...), on a public class, function, method or property
without a docstring, on a ``:class:``/``:meth:``... reference that names nothing, and on a name
of :data:`DOCUMENTED` without a docstring. ``tests/test_docs.py`` runs it, so CI does too.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("movex_p2p", "movex_p2p.embed", "movex_p2p.testing")
"""The public modules (the package's ``__all__`` names no submodule, so each is listed here)."""
DOCUMENTED = (
    "movex_p2p.Peer.id",
    "movex_p2p.Peer.name",
    "movex_p2p.Peer.close",
    "movex_p2p.Resource.updates",
    "movex_p2p.Resource.on_update",
    "movex_p2p.embed.EmbeddedPeer.id",
    "movex_p2p.embed.EmbeddedPeer.name",
)
"""Attributes that must carry a docstring (plain attributes need not, but these are asked about)."""
_ROLE = re.compile(r":(?:class|meth|func|attr|data|exc|mod):`~?\.?([\w.]+)`")


class DocsError(Exception):
    """The reference has problems (one per line)."""


def problems(modules: Sequence[str]) -> list[str]:
    """What is wrong with the docstrings of ``modules``, as pdoc reads them."""
    import pdoc.doc

    docs = [pdoc.doc.Module.from_name(name) for name in modules]
    found: list[str] = []

    def resolves(name: str, where: Any, cls: Any) -> bool:
        scopes = [cls] if cls is not None else []
        if where.taken_from[0] in sys.modules and where.taken_from[0] != "builtins":
            scopes.append(pdoc.doc.Module.from_name(where.taken_from[0]))
        if any(scope.get(name) is not None for scope in [*scopes, *docs]):
            return True
        parts = name.split(".")  # a full dotted name: the longest importable module, then the rest
        for cut in range(len(parts), 0, -1):
            try:
                module = pdoc.doc.Module.from_name(".".join(parts[:cut]))
            except RuntimeError:
                continue
            return cut == len(parts) or module.get(".".join(parts[cut:])) is not None
        return False

    def check(doc: Any, cls: Any) -> None:
        names = _ROLE.findall(doc.docstring or "")
        found.extend(f"{doc.fullname}: the reference {n!r} names nothing" for n in names if not resolves(n, doc, cls))

    def walk(namespace: Any, cls: Any) -> None:
        for member in namespace.members.values():
            if member.name.startswith("_"):
                continue
            if not isinstance(member, pdoc.doc.Variable) and not member.docstring:
                found.append(f"{member.fullname}: no docstring")
            is_class = isinstance(member, pdoc.doc.Class)
            check(member, member if is_class else cls)
            if is_class:
                walk(member, member)

    for module in docs:
        check(module, None)
        walk(module, None)
    for name in DOCUMENTED:
        module_name, _, qualname = name.partition(".")
        while True:  # split "movex_p2p.embed.EmbeddedPeer.id" into module and qualified name
            head, _, rest = qualname.partition(".")
            if f"{module_name}.{head}" not in modules:
                break
            module_name, qualname = f"{module_name}.{head}", rest
        if module_name not in modules:
            continue  # another set of modules (the test of this checker)
        member = pdoc.doc.Module.from_name(module_name).get(qualname)
        if member is None or not member.docstring:
            found.append(f"{name}: {'not found' if member is None else 'no docstring'}")
    return found


def build(out: Path, modules: Sequence[str] = MODULES) -> list[Path]:
    """Write the reference of ``modules`` under ``out`` and return the pages; raise DocsError on a problem."""
    import pdoc
    import pdoc.render

    import movex_p2p
    from movex_p2p.transport.lan import LanTransport

    # the package loads LanTransport lazily (aiortc takes a while to import): pdoc reads __dict__ only
    setattr(movex_p2p, "LanTransport", LanTransport)  # noqa: B010
    pdoc.render.configure(docformat="restructuredtext", footer_text="movex_p2p")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules, output_directory=out)
        found = [f"pdoc: {w.message}" for w in caught]
        found += problems(modules)
    if found:
        raise DocsError("\n".join(found))
    return sorted(out.rglob("*.html"))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "api"
    try:
        pages = build(out, sys.argv[2:] or MODULES)
    except DocsError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(f"{len(pages)} pages in {out}")
