"""`nslab lab link|node|partition|heal|impair`: fault injection verbs of the lab object (see docs/faults.md).

`register(verbs)` adds them to the lab object's verb sub-parsers (the ones `nslab/cli/lab.py` makes).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from .. import faults as fl
from ..errors import UsageError
from ..lab import events as ev
from ..lab.lab import Lab
from ..lab.profiles import BUILTIN
from .common import ascii_arg, dev_arg, emit_json, int_arg, lab_arg, node_arg, node_list_arg, seconds_arg, verb_parser


def register(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = verb_parser(verbs, "link", "set the link between two nodes down, up, or flap it (both veth ends)")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("a", metavar="A", type=node_arg("A"))
    p.add_argument("b", metavar="B", type=node_arg("B"))
    p.add_argument("action", choices=["down", "up", "flap"])
    p.add_argument("--iface", metavar="IFNAME", type=dev_arg("--iface"),
                   help="A's interface, when A and B share several links")
    p.add_argument("--period", type=seconds_arg("--period", 0.02, 3600), default=2.0, metavar="S",
                   help="flap: one cycle, down then up, in seconds (default 2)")
    p.add_argument("--count", type=int_arg("--count", 0, 100_000), default=3, metavar="N",
                   help="flap: cycles (default 3)")
    p.set_defaults(handler=link)
    p = verb_parser(verbs, "node", "stop a node (interfaces down, processes SIGSTOPped) or start it again")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("node", metavar="NODE", type=node_arg())
    p.add_argument("action", choices=["stop", "start"])
    p.set_defaults(handler=node)
    p = verb_parser(verbs, "partition",
                    "drop traffic between groups of nodes, silently, at the receivers (heal undoes it)")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("groups", nargs="*", metavar="GROUP", type=node_list_arg("GROUP"),
                   help="comma-separated nodes, e.g. h1,h2 h3")
    p.add_argument("--from", dest="src", metavar="A", type=node_list_arg("--from"),
                   help="one-way: A's packets to --to are dropped")
    p.add_argument("--to", dest="dst", metavar="B", type=node_list_arg("--to"),
                   help="one-way: the node that drops A's packets")
    p.add_argument("--grudge", action="append", default=[], metavar="NODE=SRC[,SRC]",
                   help="NODE drops what the SRCs send it (repeatable; Jepsen's grudge)")
    p.set_defaults(handler=partition)
    p = verb_parser(verbs, "heal", "remove every partition of a lab")
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.set_defaults(handler=heal)
    p = _impair_parser(verbs)
    p.add_argument("name", metavar="LAB", type=lab_arg())
    p.add_argument("a", metavar="A", nargs="?", type=node_arg("A"), help="one end of the link (both directions)")
    p.add_argument("b", metavar="B", nargs="?", type=node_arg("B"), help="the other end")
    p.add_argument("--from", dest="src", metavar="A", type=node_arg("--from"),
                   help="one direction only: what A sends to --to (as partition --from A --to B)")
    p.add_argument("--to", dest="dst", metavar="B", type=node_arg("--to"), help="the receiving end, with --from")
    p.add_argument("--dir", "--direction", dest="dir", default=None, metavar="A->B|B->A|both",
                   type=ascii_arg("--dir"),
                   help="direction with A B (default both): A->B (or a-b: what A sends), B->A (b-a); quote "
                        "it ('A->B'), or use --from/--to")
    p.add_argument("--iface", metavar="IFNAME", type=dev_arg("--iface"),
                   help="A's interface, when A and B share several links")

    def percent(flag: str) -> Any:
        return ascii_arg(flag, lambda t: fl.parse_percent(t, f"{flag[2:]} percentage"))

    p.add_argument("--loss", metavar="P%", type=percent("--loss"), help="drop P percent of packets (0 removes)")
    p.add_argument("--duplicate", metavar="P%", type=percent("--duplicate"),
                   help="duplicate P percent of packets (0 removes)")
    p.add_argument("--rate", metavar="RATE", type=ascii_arg("--rate", _rate_or_zero),
                   help="limit the rate, tc units: 10mbit, 1gbit, 500kbit (0 removes)")
    for flag, meta, what in NETEM_OPTIONS_HELP:
        p.add_argument(flag, metavar=meta, type=ascii_arg(flag, netem_check(flag)), help=what)
    p.add_argument("--profile", metavar="NAME", type=ascii_arg("--profile", _profile_check),
                   help="a named profile's values, under the options given: " + ", ".join(BUILTIN))
    p.add_argument("--clear", action="store_true", help="remove this link's impairments (in its direction)")
    p.set_defaults(handler=impair)


# ---- the netem options: each value checked by nslab.netem's rules as the option is read ---------------------
NETEM_OPTIONS_HELP = (
    ("--delay", "TIME", "one-way delay, e.g. 50ms (netem; at most 10s)"),
    ("--jitter", "TIME", "delay variation, at most the delay (netem)"),
    ("--delay-correlation", "P%", "correlation of successive delays (needs --jitter)"),
    ("--distribution", "NAME", "how the delay varies: uniform (default), normal, pareto, paretonormal"),
    ("--loss-correlation", "P%", "correlated --loss (done by netem at the sender instead of nftables)"),
    ("--loss-model", "MODEL", "netem's loss model, quoted: gemodel P [R [1-H [1-K]]], or state P13 [P31 [P32 "
                              "[P23 [P14]]]] (as tc-netem(8))"),
    ("--reorder", "P%", "send P percent at once, ahead of delayed packets (needs --delay)"),
    ("--reorder-correlation", "P%", "(needs --reorder)"),
    ("--gap", "N", "reorder every N-th packet (needs --reorder)"),
    ("--corrupt", "P%", "flip one bit in P percent of packets (netem)"),
    ("--corrupt-correlation", "P%", "(needs --corrupt)"),
    ("--limit", "PACKETS", "packets netem may hold (default 1000)"),
)
NETEM_DESTS = tuple(f[2:].replace("-", "_") for f, _, _ in NETEM_OPTIONS_HELP)


def option_name(key: str) -> str:
    """A topology key as the command line spells it: delay_correlation -> --delay-correlation."""
    return "--" + key.replace("_", "-")


def netem_check(flag: str) -> Any:
    key = flag[2:].replace("-", "_")

    def check(text: str) -> None:
        from ..netem import check_values

        check_values({key: text}, option_name)

    return check


def _profile_check(text: str) -> None:
    from ..lab.profiles import expand

    expand({"profile": text}, None, option_name)


# ---- impair --help: what this kernel can do, from a probe -------------------------------------------------
NETEM_OPTIONS = ("--delay", "--jitter", "--reorder", "--corrupt")  # and the other netem options
FEATURES_FILE = "/run/nslab/kernel-features.json"  # the probe's result, for this boot


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def probe_qdiscs(cache: str = FEATURES_FILE) -> dict[str, bool] | str:
    """{"tbf": bool, "netem": bool} as this kernel has them, or why it could not be told. Probed once per boot in
    a throw-away namespace of our own (a qdisc added to its lo and deleted), then read from CACHE."""
    import json
    import secrets

    boot = _boot_id()
    try:
        with open(cache) as f:
            data = json.load(f)
        if data.get("boot_id") == boot and boot and isinstance(data.get("qdiscs"), dict):
            return {str(k): bool(v) for k, v in data["qdiscs"].items()}
    except (OSError, ValueError):
        pass
    from ..errors import NslabError
    from ..kernel import netns, tc

    if os.geteuid() != 0:
        return "not probed: the probe needs root (a namespace of its own)"
    name = f"nslab-probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        netns.create(name)
        try:
            found = {kind: tc.have_qdisc(name, kind, *args)
                     for kind, args in (("tbf", ("rate", "1mbit", "burst", "32kbit", "latency", "50ms")),
                                        ("netem", ()))}
        finally:
            netns.delete(name)
    except (NslabError, OSError) as exc:
        return f"not probed: {exc}"
    try:
        os.makedirs(os.path.dirname(cache), mode=0o755, exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"boot_id": boot, "qdiscs": found}, f)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only /run: probed again next time
    return found


def kernel_note(found: dict[str, bool] | str) -> str:
    """The epilog of `impair --help`."""
    if isinstance(found, str):
        return f"This kernel's qdiscs were {found}; {', '.join(NETEM_OPTIONS)} need netem."
    lines = []
    if not found.get("netem"):
        lines.append(f"This kernel cannot do {', '.join(NETEM_OPTIONS)}: it has no netem qdisc (sch_netem), "
                     "probed; they are refused, nothing applied.")
    else:
        lines.append(f"This kernel has netem (probed): {', '.join(NETEM_OPTIONS)} work.")
    if not found.get("tbf"):
        lines.append("This kernel cannot do --rate: it has no tbf qdisc (sch_tbf), probed.")
    lines.append("--loss and --duplicate use nftables (netdev family).")
    return " ".join(lines)


class _HelpWithProbe(argparse.Action):
    """-h/--help of impair: the probe runs only when help is asked for, not on every command."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        parser.epilog = kernel_note(probe_qdiscs())
        parser.print_help()
        parser.exit()


def _impair_parser(verbs: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from .common import add_globals

    what = ("loss, duplicate, rate, delay, jitter, reorder, corrupt (netem) on one link, both ways or one "
            "(--from A --to B); --profile NAME; --clear removes")
    p: argparse.ArgumentParser = verbs.add_parser("impair", help=what, description=what, add_help=False)
    p.add_argument("-h", "--help", action=_HelpWithProbe, help="show this help (and what this kernel can do)")
    add_globals(p)
    return p


def _rate_or_zero(text: str) -> None:
    if text.strip() not in ("0", "0bit"):
        fl.parse_rate(text)


def _from_cli(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The fault changes a verb makes are the CLI's in the lab's timeline (nslab.lab.events)."""
    def run(args: argparse.Namespace) -> int:
        with ev.origin("cli"):
            return handler(args)

    run.__name__ = handler.__name__
    return run


@_from_cli
def link(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    result: dict[str, Any] = {"verb": "link", "a": args.a, "b": args.b, "action": args.action, "iface": args.iface}
    if args.action == "flap":
        fl.flap(lab, args.a, args.b, args.period, args.count, args.iface)
        return _done(args, f"lab {args.name}: link {args.a}-{args.b} flapped {args.count} times, now up",
                     {**result, "count": args.count, "period": args.period, "state": "up"})
    fl.link_state(lab, args.a, args.b, args.action == "up", args.iface)
    what = f"lab {args.name}: link {args.a}-{args.b} {args.action}"
    stopped = sorted(set(fl.load_state(lab.name).stopped) & {args.a, args.b}) if args.action == "up" else []
    if stopped:  # a stopped node's interfaces stay down until it starts: say so, not just "up"
        what += (f" (but {' and '.join(stopped)} {'is' if len(stopped) == 1 else 'are'} stopped: "
                 f"{'its end comes' if len(stopped) == 1 else 'their ends come'} up with "
                 + " and ".join(f"'nslab lab node {args.name} {n} start'" for n in stopped) + ")")
        result["stopped"] = stopped
    return _done(args, what, {**result, "state": args.action})


@_from_cli
def node(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    result: dict[str, Any] = {"verb": "node", "node": args.node, "action": args.action}
    if args.action == "stop":
        pids = fl.node_stop(lab, args.node)
        return _done(args, f"lab {args.name}: node {args.node} stopped (interfaces down, {len(pids)} processes "
                           "frozen)", {**result, "frozen": len(pids)})
    fl.node_start(lab, args.node)
    return _done(args, f"lab {args.name}: node {args.node} started", result)


@_from_cli
def partition(args: argparse.Namespace) -> int:
    forms = sum([bool(args.groups), bool(args.src or args.dst), bool(args.grudge)])
    if forms != 1:
        raise UsageError("partition: give groups, or --from A --to B, or --grudge NODE=SRC (one form)",
                         "e.g. 'partition LAB h1,h2 h3' or 'partition LAB --from h1 --to h2'")
    groups = fl.parse_groups(args.groups) if args.groups else []
    mapping: dict[str, Any] = fl.parse_grudge_words(args.grudge) if args.grudge else {}
    for name, srcs in mapping.items():
        for word in (name, *srcs):
            node_arg("--grudge")(word)
    lab = Lab.attach(args.name)
    result: dict[str, Any] = {"verb": "partition"}
    if args.groups:
        fl.partition(lab, groups)
        what = " | ".join(",".join(g) for g in groups)
        result["groups"] = groups
    elif args.grudge:
        fl.grudge(lab, mapping)
        what = "; ".join(f"{k} drops {','.join(v)}" for k, v in mapping.items())
        result["grudge"] = {k: list(v) for k, v in mapping.items()}
    else:
        if not (args.src and args.dst):
            raise UsageError("partition: --from and --to go together", "e.g. 'partition LAB --from h1 --to h2'")
        fl.partition_oneway(lab, args.src.split(","), args.dst.split(","))
        what = f"{args.src} -> {args.dst} dropped"
        result.update({"from": args.src.split(","), "to": args.dst.split(",")})
    return _done(args, f"lab {args.name}: partition {what}", result)


@_from_cli
def heal(args: argparse.Namespace) -> int:
    from ..lab.schedule import repair_orphan

    lab = Lab.attach(args.name)
    orphan = repair_orphan(lab)  # a fault schedule killed before its end: what it left is undone first
    had = sorted(fl.load_state(lab.name).grudge)  # the receivers that dropped traffic, for the message
    fl.heal(lab)
    what = (f"healed: {len(had)} node{'s' if len(had) != 1 else ''} dropped traffic ({', '.join(had)}), none now"
            if had else "healed: there was no partition (the kernel was checked all the same)")
    if orphan is not None:  # what the repair undid comes first: the "no partition" is what was left after it
        undid = orphan.get("undid") or []
        what = (f"repaired the cut-off schedule run {orphan.get('run')} (pid {orphan.get('pid')}, killed; seed "
                f"{orphan.get('seed')}): undid {', '.join(undid) if undid else 'nothing (it had left no fault)'}; "
                + ("then " + what if had else "no other partition"))
    return _done(args, f"lab {args.name}: {what}", {"verb": "heal", "healed": had,
                                                     "interrupted_run": orphan.get("run") if orphan else None,
                                                     "repaired": orphan.get("undid", []) if orphan else []})


def _impair_ends(args: argparse.Namespace) -> tuple[str, str, str]:
    """(A, B, direction) from `A B [--dir D]` or `--from A --to B`."""
    if args.src is not None or args.dst is not None:
        if args.a is not None or args.b is not None or args.dir is not None:
            raise UsageError("impair: give A B [--dir D], or --from A --to B (one form)",
                             "e.g. 'impair LAB h1 s1 --loss 5%' (both ways) or "
                             "'impair LAB --from h1 --to s1 --loss 5%'")
        if args.src is None or args.dst is None:
            raise UsageError("impair: --from and --to go together", "e.g. 'impair LAB --from h1 --to s1 --loss 5%'")
        return args.src, args.dst, "A->B"
    if args.a is None or args.b is None:
        raise UsageError("impair: name the link's two nodes (A B), or --from A --to B",
                         "e.g. 'impair LAB h1 s1 --loss 5%' or 'impair LAB --from h1 --to s1 --loss 5%'")
    return args.a, args.b, args.dir or "both"


@_from_cli
def impair(args: argparse.Namespace) -> int:
    a, b, direction = _impair_ends(args)
    dirs = fl.parse_direction(direction, a, b)  # checked before the lab is even looked up
    shown = "both ways" if len(dirs) == 2 else f"{dirs[0][0]} -> {dirs[0][1]}"
    lab = Lab.attach(args.name)
    if args.clear:
        given = [k for k in ("loss", "duplicate", "rate", "profile", *NETEM_DESTS) if getattr(args, k)]
        if given:
            raise UsageError(f"impair: --clear removes impairments; it takes no --{given[0]}",
                             "run --clear alone, or set a value to 0 to remove only that impairment")
        fl.clear(lab, a, b, direction, args.iface)
        return _done(args, f"lab {args.name}: impairments of {a}-{b} ({shown}) cleared",
                     {"verb": "impair", "a": a, "b": b, "directions": _dirs(dirs), "cleared": True})
    netem = {k: getattr(args, k) for k in NETEM_DESTS if getattr(args, k) is not None}
    fl.impair(lab, a, b, direction, loss=args.loss, rate=args.rate, duplicate=args.duplicate, iface=args.iface,
              profile=args.profile, field_name=option_name, **netem)
    asked = {k: getattr(args, k) for k in ("loss", "duplicate", "rate", "profile", *NETEM_DESTS)
             if getattr(args, k) is not None}
    return _done(args, f"lab {args.name}: {a}-{b} ({shown}) impaired",
                 {"verb": "impair", "a": a, "b": b, "directions": _dirs(dirs), "set": asked})


def _dirs(dirs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"from": s, "to": d} for s, d in dirs]


def _done(args: argparse.Namespace, line: str, result: dict[str, Any]) -> int:
    """The line a person reads, or with --json the result object: what was done and the lab's faults now."""
    if getattr(args, "json", False):
        emit_json({"lab": args.name, **result, "ok": True, "faults": fl.faults(args.name)})
    else:
        print(line)
    return 0
