"""``python -m api``: serve the API on HOST:PORT with ``API_WORKERS`` processes.

One process runs uvicorn in place. Several share the port, each on its own socket, under a
supervisor that restarts one that dies and stops them all on SIGTERM or SIGINT (api.supervisor).
The supervisor serves nothing: this module imports only what it needs, and the serving
processes import the app, torch and the models (a test checks that the supervisor has no torch).
"""

from __future__ import annotations

import argparse
import sys

from api.supervisor import CHECK_FLAG, CHILD_FLAG, supervise
from bootstrap import settings_or_exit
from ml.cores import available_cores


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, then start the API (or, under the supervisor, one process of it)."""
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument(CHILD_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(CHECK_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # structlog imports rich and pygments for pretty console tracebacks when they are installed
    # (the CLI's progress bars need rich); the API logs JSON, so its processes go without them:
    # 4 MB each (`just bench-memory`). Nothing has imported structlog yet (tested).
    sys.modules.setdefault("rich", None)
    s = settings_or_exit()
    if args.serve_one:  # started by the supervisor: the port is shared
        from api.server import serve

        serve(s, reuse_port=True)
        return
    if args.check_only:  # the supervisor's checks before it starts any
        from api.startup import checks

        sys.exit(checks(s, migrate=True))  # so that its serving processes need not
    if s.api.workers > 1:
        sys.exit(supervise(s, s.api.workers, available_cores()))
    from api.startup import start

    sys.exit(start(s))


if __name__ == "__main__":
    main()
