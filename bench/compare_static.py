"""Fast mode with static questions and two workers against the reference server.

``python -m bench.compare_static [bench.compare options]``: builds the static question table
first when it is missing (``rag eval static-query``, about a minute), then runs
``python -m bench.compare --fast-query-encoder static --workers 2`` with the options given
(``--write`` puts the figures in their own part of docs/benchmarks.md). This is the
configuration that meets issue 16's fast-mode targets on this CPU (docs/static-query.md).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from bench.compare import main as compare
    from eval.cli import main as eval_cli
    from rag.settings import Settings
    from rag.static_query import table_path

    args = list(sys.argv[1:] if argv is None else argv)
    settings = Settings(fast_query_encoder="static")
    if not table_path(settings).is_file():
        print(f"building the static question table at {table_path(settings)}", flush=True)
        code = eval_cli(["static-query"])
        if code:
            return code
    return compare(["--fast-query-encoder", "static", "--workers", "2", *args])


if __name__ == "__main__":
    raise SystemExit(main())
