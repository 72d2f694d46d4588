"""Shared pytest configuration.

``tests`` is a package: modules import each other as ``tests.resources``. pyproject.toml's
``pythonpath`` (pytest's one place for it) puts this checkout's ``src`` first, so the
worktree's package wins over an installed one, and ``examples`` (the tests import liar's dice's
rules as ``liars_dice``). The process beds live in :mod:`movex_p2p.testing`.
"""
