"""``python -m api``: serve the API on HOST:PORT with ``API_WORKERS`` processes.

One process runs uvicorn in place. Several share the port, each on its own socket, under a
supervisor that restarts one that dies and stops them all on SIGTERM or SIGINT (api.supervisor).
"""

from __future__ import annotations

import argparse
import sys

from api.server import serve
from api.startup import start
from api.supervisor import CHILD_FLAG
from bootstrap import settings_or_exit
from ml.cores import available_cores


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, then start the API (or, under the supervisor, one process of it)."""
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument(CHILD_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    s = settings_or_exit()
    if args.serve_one:  # started by the supervisor: the port is shared
        serve(s, reuse_port=True)
        return
    sys.exit(start(s, available_cores()))


if __name__ == "__main__":
    main()
