"""``python -m settings``: print the configuration table, or write it into a file's markers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from settings.table import markdown_table, write_table


def main() -> int:
    """Print the table (--markdown) or rewrite the part of a file between the markers (--write)."""
    p = argparse.ArgumentParser(prog="python -m settings", description=__doc__)
    p.add_argument("--markdown", action="store_true", help="print the table")
    p.add_argument("--write", type=Path, metavar="FILE", help="replace the table in FILE")
    args = p.parse_args()
    if args.write:
        changed = write_table(args.write)
        print(f"{args.write}: {'table updated' if changed else 'table already current'}")
    else:
        sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
