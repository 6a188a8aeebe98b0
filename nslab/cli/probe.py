"""`nslab [-n NS] probe listen|connect|http`: the seed post's `nc -lnvp 8900` and `curl localhost:8900`.

Exit status: 0 reachable / a response came back; 1 unreachable, no response; 2 bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from typing import Any

from .. import probe
from ..names import check_netns_name
from .common import add_globals, checked, emit_json, seconds_arg


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="listen, connect, fetch over HTTP (nc and curl of the seed post)",
        description="Probe connectivity, inside a namespace with -n NS.",
    )
    add_globals(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    p = verbs.add_parser(
        "listen",
        help="listen on a port and print what arrives (like nc -lnvp PORT)",
        description="Print 'Listening on 0.0.0.0 PORT', then each connection and what it sends. "
        "Answers nothing unless --http or --echo. Ctrl-C stops (exit 130).",
    )
    add_globals(p)
    p.add_argument("port", metavar="PORT", type=checked(lambda t: probe.check_port(t, allow_zero=True), "PORT"),
                   help="port to listen on (0: any free port)")
    p.add_argument("--udp", action="store_true", help="UDP: print each datagram and its source")
    p.add_argument(
        "--once", action="store_true", help="exit after the first connection closes (UDP: the first datagram)"
    )
    reply = p.add_mutually_exclusive_group()
    reply.add_argument("--http", action="store_true", help="answer each TCP request with a minimal HTTP 200")
    reply.add_argument("--echo", action="store_true", help="send back what arrives (UDP: each datagram)")
    p.add_argument("--host", default="0.0.0.0", metavar="ADDR", type=checked(probe.check_host, "--host"),
                   help="local address (default 0.0.0.0)")
    p.set_defaults(handler=cmd_listen)

    p = verbs.add_parser(
        "connect",
        help="is HOST:PORT reachable? exit 0 yes, 1 no",
        description="TCP connect (or, with --udp, send a datagram and wait for a reply) and say why not.",
    )
    add_globals(p)
    p.add_argument("host", metavar="HOST", type=checked(probe.check_host, "HOST"))
    p.add_argument("port", metavar="PORT", type=checked(probe.check_port, "PORT"))
    p.add_argument("--udp", action="store_true", help="UDP: reachable only if a reply comes back")
    p.add_argument("--timeout", type=seconds_arg("--timeout", 0.001, probe.MAX_TIMEOUT), default=3.0, metavar="S",
                   help="seconds to wait (default 3)")
    p.set_defaults(handler=cmd_connect)

    p = verbs.add_parser(
        "http",
        help="GET a URL and print the body (like curl)",
        description="HTTP/1.1 GET (plain http only); exit 0 on any response, 1 if none.",
    )
    add_globals(p)
    p.add_argument("url", metavar="URL", type=checked(probe.parse_url, "URL"),
                   help="e.g. http://localhost:8900/ or localhost:8900")
    p.add_argument("--timeout", type=seconds_arg("--timeout", 0.001, probe.MAX_TIMEOUT), default=5.0, metavar="S",
                   help="seconds to wait (default 5)")
    p.add_argument("-i", "--include", action="store_true", help="print the status line and headers too")
    p.set_defaults(handler=cmd_http)


def _say(text: str) -> None:
    print(text, flush=True)


def _inside(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """With -n NS, this process moves into NS for the probe: a listener then is a process of NS, so
    `nslab ns pids NS` lists it and `nslab ns del NS` ends it; names resolve and sockets open in NS."""
    name = getattr(args, "netns", None)
    if name is None:
        return contextlib.nullcontext()
    from ..kernel import netns

    return netns.entered(check_netns_name(name))


def cmd_listen(args: argparse.Namespace) -> int:
    port = probe.check_port(args.port, allow_zero=True)
    as_json = bool(getattr(args, "json", False))
    with _inside(args):
        probe.listen(
            port,
            udp=args.udp,
            once=args.once,
            host=args.host,
            out=(lambda _text: None) if as_json else _say,
            answer_http=args.http,
            echo=args.echo,
            events=emit_json_flush if as_json else None,
        )
    return 0


def emit_json_flush(data: object) -> None:
    emit_json(data)
    sys.stdout.flush()


def cmd_connect(args: argparse.Namespace) -> int:
    port = probe.check_port(args.port)
    probe.check_host(args.host)
    probe.check_timeout(args.timeout)
    with _inside(args):
        res = probe.connect(args.host, port, udp=args.udp, timeout=args.timeout)
    if res.hint and getattr(args, "netns", None):  # the fix is a command for that namespace
        res = dataclasses.replace(res, hint=probe.hint_for(args.host, res.errno, args.netns))
    if getattr(args, "json", False):
        emit_json(res.to_json())
    elif res.ok:
        print(f"{res.target} reachable ({res.proto}, {res.reason}, {res.elapsed_ms:.1f} ms)")
    else:
        print(f"nslab: {res.target} unreachable: {res.reason}", file=sys.stderr)
        if res.hint:
            print(f"  hint: {res.hint}", file=sys.stderr)
    return 0 if res.ok else 1


def cmd_http(args: argparse.Namespace) -> int:
    netns = getattr(args, "netns", None)
    as_json = bool(getattr(args, "json", False))
    try:
        res = probe.http(args.url, timeout=args.timeout, netns=netns)
    except probe.ProbeFailed as exc:
        if as_json:
            emit_json({"url": args.url, "error": exc.result.reason, **exc.result.to_json()})
            return 1
        raise
    if as_json:
        emit_json(res.to_json())
        return 0
    out = sys.stdout
    if args.include:
        out.write(f"HTTP/1.1 {res.status} {res.reason}\r\n")
        for key, value in res.headers:
            out.write(f"{key}: {value}\r\n")
        out.write("\r\n")
    out.flush()
    out.buffer.write(res.body) if hasattr(out, "buffer") else out.write(
        res.body.decode("utf-8", "backslashreplace")
    )
    out.flush()
    return 0
