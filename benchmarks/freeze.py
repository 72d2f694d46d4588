"""The cost of freezing a reducer's result: this checkout's ``freeze`` against a baseline checkout's.

Two states, each frozen once; then the step a reducer's result takes, ``freeze({**state, ...})``,
timed (min of ``--repeat`` rounds of ``--number`` calls), the baseline and ours alternating in one
process, each imported from its own ``src``:

- nested: 80 players of {name, score, pos, inv}; one player's score changes;
- flat: 100 integer keys; one changes.

    mkdir -p ../base && git archive <base commit> src | tar -x -C ../base
    python benchmarks/freeze.py --baseline-src ../base/src
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def load(src: Path, tag: str) -> ModuleType:
    """``movex_p2p.resource.state`` of the checkout at ``src``, under a name of its own."""
    name = f"movex_p2p.resource._state_{tag}"  # inside the installed package: its relative imports resolve
    spec = importlib.util.spec_from_file_location(name, src / "movex_p2p" / "resource" / "state.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def steps(state: ModuleType) -> dict[str, Callable[[], Any]]:
    freeze = state.freeze
    nested = freeze({f"p{i}": {"name": "x", "score": i, "pos": [i, i], "inv": ["a", "b"]} for i in range(80)})
    flat = freeze({f"k{i}": i for i in range(100)})
    return {
        "nested": lambda: freeze({**nested, "p3": {**nested["p3"], "score": 5}}),
        "flat": lambda: freeze({**flat, "k3": 7}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", required=True, help="the src directory of the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of baseline and ours")
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    trees = {"baseline": steps(load(Path(args.baseline_src), "baseline")), "ours": steps(load(ROOT / "src", "ours"))}
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for tree, timed in trees.items():
            for case, step in timed.items():
                took = min(timeit.repeat(step, number=args.number, repeat=args.repeat)) / args.number
                best[tree, case] = min(best.get((tree, case), took), took)
    print("| state | baseline | ours | ours / baseline |")
    print("|---|---|---|---|")
    for case in ("nested", "flat"):
        base, ours = best["baseline", case], best["ours", case]
        print(f"| {case} | {base * 1e6:.1f} µs | {ours * 1e6:.1f} µs | {ours / base:.2f} |")


if __name__ == "__main__":
    main()
