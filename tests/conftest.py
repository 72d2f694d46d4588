"""Shared pytest configuration.

``tests`` is a package: modules import each other as ``tests.resources``. pyproject.toml's
``pythonpath`` (pytest's one place for it) puts this checkout's ``src`` first, so the
worktree's package wins over an installed one, and ``examples`` (the tests import liar's dice's
rules as ``liars_dice``). The process beds live in :mod:`movex_p2p.testing`.
"""

from hypothesis import settings

# The suite runs on several workers at once (pyproject.toml: -n), so a test's wall time depends on
# its neighbours: no per-example deadline (properties are checked, not speed; speed lives in benchmarks/).
settings.register_profile("movex", deadline=None)
settings.load_profile("movex")
