"""`nslab lab up|down|list|status|exec|cleanup`: declarative labs of namespaces."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from ..errors import UsageError
from ..lab import cleanup as cleanup_mod
from ..lab import state as st
from ..lab.lab import Lab
from ..namespace import Namespace
from ..show import addr_line, link_lines, route_line
from .common import emit_json, file_arg, lab_arg, node_arg, object_parser, verb_parser
from .lab_table import format_table, node_rows, node_settings
from .progress import Bar

STATUS_EVENTS = 5  # the timeline's last events `lab status` shows


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = object_parser(sub, "lab", "labs: many namespaces joined by links, switches and routers")
    p = verb_parser(verbs, "up", "create a lab from a file or a built-in topology (idempotent; grows a running lab)")
    p.add_argument("file", nargs="?", type=file_arg("FILE"), help="topology file (YAML)")
    p.add_argument("--topo", metavar="KIND,ARGS",
                   help="built-in: single,N | linear,N | tree,DEPTH,FANOUT | ring,N | leafspine,S,L,H")
    p.add_argument("--name", type=lab_arg("--name"), help="lab name (overrides the file's)")
    p.add_argument("-q", "--quiet", action="store_true", help="the summary line only, no node table")
    p.set_defaults(handler=up)
    p = verb_parser(verbs, "validate", "check a topology file without root and without creating anything "
                                       "(exit 0 valid, 2 with the file, line and field at fault)")
    p.add_argument("file", metavar="FILE", type=file_arg("FILE"), help="topology file (YAML)")
    p.add_argument("--name", type=lab_arg("--name"), help="lab name (overrides the file's)")
    p.set_defaults(handler=validate)
    p = verb_parser(verbs, "down", "delete a lab and everything in it", aliases=["destroy"])
    p.add_argument("name", type=lab_arg())
    p.set_defaults(handler=down)
    p = verb_parser(verbs, "list", "labs that are up", aliases=["ls"])
    p.set_defaults(handler=list_)
    p = verb_parser(verbs, "status", "nodes, interfaces, addresses and routes of a lab, read from the kernel")
    p.add_argument("name", type=lab_arg())
    p.set_defaults(handler=status)
    p = verb_parser(verbs, "exec", "run a command in a node; words naming nodes become their IPv4 addresses")
    p.add_argument("name", type=lab_arg())
    p.add_argument("node", type=node_arg())
    p.add_argument("--no-resolve", action="store_true", help="pass node names through unchanged")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    p.set_defaults(handler=exec_)
    p = verb_parser(verbs, "cleanup", "remove leftovers of labs whose state is gone or broken (only nslab's)")
    p.add_argument("name", nargs="?", type=lab_arg(), help="only this lab's leftovers (default: every lab's)")
    p.set_defaults(handler=cleanup)
    p = verb_parser(verbs, "check", "run the checks: of the lab's topology file (reach, no_reach, port_open)")
    p.add_argument("name", type=lab_arg())
    p.set_defaults(handler=check)
    # Verbs with modules of their own: observe (reach, perf, capture, top, graph) and faults (link, node, partition,
    # heal, impair).
    from . import lab_capture, lab_events, lab_faults, lab_graph, lab_perf, lab_reach, lab_services, lab_top

    for module in (lab_reach, lab_perf, lab_capture, lab_top, lab_graph, lab_faults, lab_events, lab_services):
        module.register(verbs)


def up(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.topo is None):
        raise UsageError("lab up: give a topology file or --topo, not both and not neither",
                         "e.g. 'nslab lab up campus.yaml' or 'nslab lab up --topo single,3'")
    lab = Lab.from_file(args.file, args.name) if args.file is not None else Lab.from_topo_arg(args.topo, args.name)
    from ..lab import events

    bar = Bar()
    try:
        with events.origin("cli"):  # what it repairs (a killed schedule's faults) is the CLI's in the timeline
            res = lab.up(progress=bar)
    finally:
        bar.close()
    rows = node_rows(lab.plan)
    _, services = _supervisor_status(lab.name)
    if args.json:
        emit_json({"lab": res.lab, "changed": res.changed, "nodes": res.nodes, "links": res.links,
                   "routes": res.routes, "seconds": round(res.seconds, 4), "repaired": res.repaired,
                   "left_alone": res.left_alone, "table": rows, "services": services})
    else:
        print(res.summary())
        if not args.quiet:
            print(format_table(rows))
            if services:
                print("services: " + ", ".join(f"{s['node']}/{s['name']} {s['state']}" for s in services))
    return 0


def validate(args: argparse.Namespace) -> int:
    """Load and plan the file: every check `up` makes before the kernel is touched; nothing is created."""
    try:
        lab = Lab.from_file(args.file, args.name)
        plan = lab.plan
        from ..lab import system  # `${...}` of services and files, as `up`'s prepare checks it (pure)

        system.check_subst(plan, lab.topology)
    except UsageError as exc:
        if args.json:
            emit_json({"file": args.file, "valid": False, "error": exc.message, "hint": exc.hint})
        raise
    kinds = {k: sum(n.kind == k for n in plan.nodes) for k in ("host", "router", "switch")}
    implicit = sum(n.name not in lab.topology.nodes for n in plan.nodes)
    addresses = sum(len(i.addresses) for lk in plan.links for i in (lk.a, lk.b))
    if args.json:
        emit_json({"file": args.file, "valid": True, "lab": plan.lab, "nodes": len(plan.nodes), "kinds": kinds,
                   "implicit_switches": implicit, "links": len(plan.links), "routes": len(plan.routes),
                   "addresses": addresses, "checks": len(lab.topology.checks)})
        return 0
    what = ", ".join(f"{v} {k}{'es' if k == 'switch' and v != 1 else 's' if v != 1 else ''}"
                     for k, v in kinds.items() if v)
    print(f"{args.file}: valid: lab {plan.lab}, {len(plan.nodes)} nodes ({what}"
          + (f", {implicit} of them implicit LAN switch{'es' if implicit != 1 else ''}" if implicit else "")
          + f"), {len(plan.links)} links, {addresses} addresses, {len(plan.routes)} routes"
          + (f", {len(lab.topology.checks)} checks" if lab.topology.checks else ""))
    return 0


def down(args: argparse.Namespace) -> int:
    rec = st.load(args.name)
    if rec is None:
        if args.name in cleanup_mod.orphan_labs(only=args.name):
            n = cleanup_mod.cleanup(only=args.name)
            return _down_done(args, f"lab {args.name}: state was lost; removed {n} namespaces carrying its marker",
                              "state lost", n)
        # An `up` killed before its first record leaves its lock file, or cut inside that first save the
        # record's .tmp: removed under the lock (as drop_lock does), so never while an `up` runs.
        with st.locked(args.name):
            if st.load(args.name) is None:
                st.remove(args.name)
                # A down cut after its record went leaves the supervisor's remains (views, logs): ours by name
                # under nslab's directory, and no lab of that name is recorded.
                from ..lab import nodeview, system

                system.stop_supervisor(args.name)
                nodeview.remove_lab_dir(args.name)
        return _down_done(args, f"lab {args.name}: not up, nothing to do", "not up", 0)
    bar = Bar()
    try:
        n, skipped = _down(args.name, bar)
    finally:
        bar.close()
    return _down_done(args, f"lab {args.name} down: {n} namespaces deleted", "down", n, skipped)


def _down_done(args: argparse.Namespace, line: str, was: str, deleted: int, skipped: int = 0) -> int:
    if args.json:
        emit_json({"lab": args.name, "verb": "down", "ok": True, "was": was, "deleted": deleted,
                   "left_alone": skipped})
    else:
        print(line)
    return 0


def _down(name: str, bar: Bar) -> tuple[int, int]:
    from ..lab.lab import down_by_name

    deleted, skipped = down_by_name(name, bar)
    if skipped:
        print(f"lab {name}: left {skipped} namespaces alone (they do not carry this lab's marker)",
              file=sys.stderr)
    return deleted, skipped


def list_(args: argparse.Namespace) -> int:
    rows = []
    for name in st.names():
        rec = st.load(name)
        if rec is None:
            continue
        status = rec.status
        if status == "up" and _supervisor_status(name)[0] == "gone":
            status = "degraded"  # its supervisor was killed: services stopped, nodes without views (lab status)
        rows.append({"name": name, "status": status, "nodes": len(rec.netns), "source": rec.source})
    if args.json:
        emit_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:<14} {r['status']:<9} {r['nodes']:>6} nodes  {r['source'] or ''}")
    return 0


def status(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    out: list[dict[str, Any]] = []
    for node in lab.plan.nodes:
        ns = Namespace.open(node.netns)
        try:
            links = [lk for lk in ns.rtnl.links(with_addrs=True) if lk.ifname != "lo"]
            routes = ns.rtnl.routes()
        finally:
            ns.close()
        out.append({"node": node.name, "kind": node.kind, "netns": node.netns,
                    "links": links, "routes": routes, "settings": node_settings(lab.plan, node.name)})
    from .. import faults
    from ..lab import events

    active = faults.faults(lab.name)
    drift = lab.drift().lines()
    timeline = events.read(lab.name)
    recent = timeline[-STATUS_EVENTS:]
    supervisor, services = _supervisor_status(lab.name)
    if args.json:
        emit_json({"lab": lab.name, "faults": active, "drifted": bool(drift), "drift": drift,
                   "events": recent, "runs": events.runs(timeline),
                   "supervisor": supervisor, "services": services, "nodes": [
            {"node": o["node"], "kind": o["kind"], "netns": o["netns"],
             "links": [lk.to_json(with_addrs=True) for lk in o["links"]],
             "routes": [r.to_json() for r in o["routes"]], **o["settings"]} for o in out]})
        return 0
    for o in out:
        print(f"{o['node']} ({o['kind']}, netns {o['netns']})")
        for lk in o["links"]:
            print("  " + "\n  ".join(link_lines(lk)[:1]))
            for a in lk.addr_info:
                if a.scope != "link":
                    print("  " + addr_line(a))
        for r in o["routes"]:
            if r.protocol != "kernel":
                print("    route " + route_line(r))
    if supervisor == "gone":
        print(f"supervisor gone: services stopped, nodes have no view ('nslab lab up' with the lab's file "
              f"starts a new one, 'nslab lab down {lab.name}' removes the lab)")
    if services:
        print("services:")
        for svc in services:
            print(f"  {svc['node']}/{svc['name']}: {svc['state']}" + (f" (pid {svc['pid']})" if svc["pid"] else ""))
    if active:
        print("faults:")
        for f in active:
            print("  " + faults.describe_line(f))
    if recent:
        print(f"last fault events ({len(recent)} of {len(timeline)}; all: 'nslab lab events {lab.name}'):")
        print(events.format_table(recent))
    for note in events.notes(timeline, lab.name):
        print(note)
    if drift:
        print(f"drifted: the kernel differs from the plan{' and its faults' if active else ''} "
              f"('nslab lab up' repairs what it can):")
        for line in drift:
            print("  " + line)
    return 0


def _supervisor_status(name: str) -> tuple[str, list[dict[str, Any]]]:
    """("running" | "gone" | "none" (a lab made without one), its services)."""
    from ..errors import NslabError
    from ..lab import client

    if not client.has_views(name):
        return "none", []
    try:
        with client.Client.connect(name) as c:
            return "running", list(c.call("svc.ps", timeout=10))
    except NslabError:
        return "gone", []


def exec_(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    # argparse's REMAINDER swallows options written after NODE: take ours back before the "--".
    while cmd and cmd[0] == "--no-resolve":
        args.no_resolve = True
        cmd = cmd[1:]
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("lab exec: no command given", f"write 'nslab lab exec {args.name} {args.node} -- CMD'")
    lab = Lab.attach(args.name)
    node = lab[args.node]
    if not args.no_resolve:
        cmd = lab.resolve(cmd)
    if shutil.which(cmd[0]) is None:
        raise UsageError(f"lab exec: command {cmd[0]!r} not found", "check the spelling or give a full path")
    from ..lab import client

    env = {**os.environ, **node.plan.env}  # the node's `env:` from the topology file
    if client.has_views(lab.name):  # the node's view, from its lab's supervisor
        from .lab_services import run_in_view

        return run_in_view(lab.name, args.node, cmd, env)
    from ..kernel.spawn import enter_full

    enter_full(node.netns)  # a lab made without a supervisor: its netns, /sys, /etc/netns as ip netns exec
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env)


def cleanup(args: argparse.Namespace) -> int:
    n = cleanup_mod.cleanup(only=args.name)
    print(f"cleanup: removed {n} leftover namespaces")
    return 0


def check(args: argparse.Namespace) -> int:
    from ..checks import run_checks

    lab = Lab.attach(args.name)
    if not lab.topology.checks:
        raise UsageError(f"lab {args.name!r} has no checks",
                         "add a checks: list to its topology file (docs/topology.md)")
    results = run_checks(lab)
    if args.json:
        emit_json([r.to_json() for r in results])
    else:
        for r in results:
            print(r.line())
        failed = sum(not r.ok for r in results)
        print(f"{len(results) - failed} passed, {failed} failed")
    return 0 if all(r.ok for r in results) else 1
