"""The `nslab` command line: iproute2 grammar, one module per object (ns, link, addr, route, ...)."""

import sys


def run() -> None:
    """The console script. A Ctrl-C while the CLI is still being imported, before its signal handlers
    exist, ends as one later does (one line, exit 130): nothing has been done yet."""
    try:
        from .main import run as run_cli

        run_cli()
    except KeyboardInterrupt:
        print("nslab: interrupted", file=sys.stderr)
        sys.exit(130)
