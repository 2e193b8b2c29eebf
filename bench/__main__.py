"""``python -m bench all`` (or a list of names): run the benchmarks one after another.

Names: latency, accurate, cold_start, http_load, compare, compare_static, indexing, scale.
Each writes var/bench/results/NAME.json and prints its table; the plots go to
docs/bench-*.png.
"""

from __future__ import annotations

import importlib
import sys

ORDER = (
    "latency",
    "accurate",
    "cold_start",
    "http_load",
    "compare",
    "compare_static",
    "indexing",
    "scale",
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args in (["-h"], ["--help"]):
        print(__doc__)
        return 0 if args else 2
    names = list(ORDER) if args == ["all"] else args
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)}")
        return 2
    for name in names:
        print(f"\n## {name}\n", flush=True)
        module = importlib.import_module(f"bench.{name}")
        code = module.main([])
        if code:
            return int(code)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
