"""`nslab lab shell|ps|logs|service`: a node's view and the services its lab's supervisor runs (docs/services.md)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from ..errors import UsageError
from .common import emit_json, lab_arg, node_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "shell", "an interactive shell in a node (its hostname, /etc/hosts, /sys, private dirs)")
    p.add_argument("name", type=lab_arg())
    p.add_argument("node", type=node_arg())
    p.set_defaults(handler=shell)
    p = verb_parser(verbs, "ps", "the lab's services: node, name, state, pid, restarts")
    p.add_argument("name", type=lab_arg())
    p.set_defaults(handler=ps)
    p = verb_parser(verbs, "logs", "a service's log (NODE/SERVICE), or every log of a node (NODE)")
    p.add_argument("name", type=lab_arg())
    p.add_argument("target", metavar="NODE[/SERVICE]")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing what is appended (Ctrl-C ends)")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.set_defaults(handler=logs)
    p = verb_parser(verbs, "service", "stop, start or restart one service (NODE/SERVICE)")
    p.add_argument("name", type=lab_arg())
    p.add_argument("target", metavar="NODE/SERVICE")
    p.add_argument("action", choices=("stop", "start", "restart"))
    p.set_defaults(handler=service)


def run_in_view(lab_name: str, node: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run CMD in NODE's view and return its exit status (128+N for signal N), as `ip netns exec` would.

    This process joins the view (net, uts, mnt, pid: single-threaded here) and forks, since a pid namespace
    takes children only; it forwards SIGTERM and SIGHUP and leaves Ctrl-C to the terminal's process group."""
    from ..kernel import nsops
    from ..lab import client

    with client.view(lab_name, node) as fds:
        here = os.getcwd()
        nsops.enter(fds)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(here if os.path.isdir(here) else "/")
            os.execvpe(cmd[0], cmd, env if env is not None else dict(os.environ))
        except OSError as exc:
            os.write(2, f"nslab: {cmd[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def shell(args: argparse.Namespace) -> int:
    from ..lab.lab import Lab

    Lab.attach(args.name).plan.node(args.node)
    sh = os.environ.get("SHELL") or "/bin/bash"
    env = dict(os.environ, NSLAB_LAB=args.name, NSLAB_NODE=args.node)
    return run_in_view(args.name, args.node, [sh, "-i"], env)


def _ps(name: str) -> list[dict[str, Any]]:
    from ..lab import client

    with client.Client.connect(name) as c:
        rows: list[dict[str, Any]] = c.call("svc.ps")
    return rows


def ps(args: argparse.Namespace) -> int:
    from ..lab.lab import Lab

    Lab.attach(args.name)
    rows = _ps(args.name)
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        print(f"lab {args.name}: no services")
        return 0
    print(f"{'SERVICE':<24} {'STATE':<10} {'PID':>7} {'RESTARTS':>8}  COMMAND")
    for r in rows:
        state = r["state"] + (f" ({r['status']})" if r["status"] not in (None, 0) and r["pid"] is None else "")
        cmd = " ".join(r["cmd"])
        print(f"{r['node'] + '/' + r['name']:<24} {state:<10} {r['pid'] or '-':>7} {r['restarts']:>8}  "
              f"{cmd if len(cmd) <= 60 else cmd[:57] + '...'}")
    return 0


def _target(lab: Any, target: str, need_service: bool) -> tuple[str, str | None]:
    node, _, svc = target.partition("/")
    lab.plan.node(node)
    if need_service and not svc:
        raise UsageError(f"{target!r} names no service", "write NODE/SERVICE, e.g. h1/web (see 'nslab lab ps')")
    if svc:
        known = [s.name for s in lab.topology.nodes[node].services] if node in lab.topology.nodes else []
        if svc not in known:
            raise UsageError(f"lab {lab.name}: node {node} has no service {svc!r}",
                             f"its services: {', '.join(known) or 'none'}")
    return node, svc or None


def logs(args: argparse.Namespace) -> int:
    from ..lab import nodeview as nv
    from ..lab import state as st
    from ..lab.lab import Lab
    from ..services import tail

    lab = Lab.attach(args.name)
    node, svc = _target(lab, args.target, False)
    names = [svc] if svc else [s.name for s in lab.topology.nodes[node].services]
    paths = [nv.log_path(args.name, node, n) for n in names]
    if args.tail is not None and args.tail < 0:
        raise UsageError("--tail must be 0 or more", "e.g. --tail 50")
    offsets = {}
    for p in paths:
        if len(paths) > 1:
            print(f"==> {os.path.relpath(p, nv.lab_dir(args.name))} <==")
        if args.tail is not None:
            text = tail(p, args.tail)
            if text:
                print(text)
        else:
            try:
                with open(p, errors="replace") as f:
                    sys.stdout.write(f.read())
            except FileNotFoundError:
                pass
        offsets[p] = os.path.getsize(p) if os.path.exists(p) else 0
    sys.stdout.flush()
    while args.follow:
        time.sleep(0.2)
        if st.load(args.name) is None:  # `lab down` removed the logs too: nothing more will come
            print(f"lab {args.name} is down", file=sys.stderr)
            return 0
        for p in paths:
            try:
                with open(p, "rb") as f:
                    f.seek(offsets[p])
                    data = f.read()
            except FileNotFoundError:
                continue
            if data:
                offsets[p] += len(data)
                sys.stdout.write(data.decode("utf-8", "replace"))
                sys.stdout.flush()
    return 0


def service(args: argparse.Namespace) -> int:
    from ..lab import client
    from ..lab.lab import Lab

    lab = Lab.attach(args.name)
    node, svc = _target(lab, args.target, True)
    with client.Client.connect(args.name) as c:
        row = c.call(f"svc.{args.action}", node=node, name=svc, timeout=30)
        if args.action != "stop":  # wait until ready (or failed), as `lab up` does
            while row["state"] == "starting":
                time.sleep(0.1)
                row = next(r for r in c.call("svc.ps") if r["node"] == node and r["name"] == svc)
    if args.json:
        emit_json(row)
    else:
        print(f"{node}/{svc}: {row['state']}" + (f" (pid {row['pid']})" if row["pid"] else ""))
    if row["state"] == "failed":  # why: its error and the log's last lines
        from ..services import tail
        print(f"nslab: service {node}/{svc}: {row.get('error') or 'failed'}", file=sys.stderr)
        last = tail(row["log"], 10) if row.get("log") else ""
        if last:
            print("  last lines of its log:\n" + "\n".join("    " + ln for ln in last.splitlines()), file=sys.stderr)
        return 1
    return 0
