"""``python -m gpucredit --version``: the version and the backends of this build."""

from __future__ import annotations

import argparse
import sys

from . import __version__, backends


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpucredit", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and the backends, then exit")
    args = parser.parse_args(argv)
    if not args.version:
        parser.print_help()
        return 0
    shown = []
    for name, available in backends().items():
        shown.append(name if available else f"{name} (compiled in; no device here)")
    print(f"gpucredit {__version__}")
    print(f"backends: {', '.join(shown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
