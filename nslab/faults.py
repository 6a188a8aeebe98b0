"""Fault injection for labs: link state, node stop/start, partitions, per-direction impairments.

The shape (DESIGN.md §1, §7): every fault call turns the lab's fault record (what the user asked for) into a new
record, renders it into per-namespace kernel state (pure functions, tested without root), and hands that to the
lab's reconcile engine (nslab.lab.reconcile), which reads the kernel of every node concerned, diffs it against
the plan plus the faults, and applies the difference with undo. So undoing a fault gives back the whole plan,
not just the link: the routes and IPv6 addresses the kernel dropped with a device come back too.

- partitions: `table inet nslab` in the RECEIVING node (input hook; forward hook too in routers), dropping
  packets whose source is an address (from the plan) of a node the receiver holds a grudge against. Silent to
  applications, as on a real network: never the sender's output path, which returns EPERM to the sender.
- loss: `table netdev nslab`, ingress hook of the receiving end of the link, `numgen random` drop.
- duplicate: same table, egress hook of the sending end, `numgen random ... dup to` the same device.
- rate: a tbf qdisc (handle 5e1a:) on the egress of the sending end.
- delay, jitter, reorder, corrupt, correlated or modelled loss: a netem qdisc (handle 5e1a:) on the egress of
  the sending end, with the tbf under it (5e1c:) when the direction also has a rate (docs/impairments.md).
- link down: both veth ends administratively down; node stop: all the node's ends down and its processes
  SIGSTOPped (a frozen machine: state kept, nothing answers), start: SIGCONT and ends up again.

Each node's nft state is rewritten as ONE `nft -f` transaction (delete nslab's tables, create them anew), so
every change is atomic per namespace and idempotent; an empty record renders to "no nslab table", so heal
and clear give back exactly the ruleset that was there before. A failure part-way rolls the namespaces
already changed back. The record lives in /run/nslab/faults/LAB.json (written atomically) and is written
BEFORE the kernel is touched, marked pending until the change is complete: after a kill -9 the next fault
call rewrites every node, and heal / clear act on the tables and qdiscs the kernel holds, whatever the record
says. Stopped processes are recorded with their start time and only ever signalled through a pidfd after
checking that the pid is still that process, in that node's namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import units
from .errors import FeatureMissing, NslabError, UsageError
from .lab import events as ev
from .lab import reconcile
from .netem import Netem, check_values, netem_wanted
from .units import SHAPING_RATES
from .units import format_rate as format_rate  # the one grammar of rates, times and percentages
from .units import parse_percent as parse_percent
from .units import parse_time as parse_time

if TYPE_CHECKING:
    from .lab.plan import IfacePlan, Plan
    from .lab.view import LabView

FAULT_DIR = "/run/nslab/faults"
NUMGEN_MOD = 10000  # percentages to 0.01 %
DUP_BIT = 0x20000000  # marks a copy made by `dup` while it re-enters the egress hook (so it is not copied again)
PRIORITY = -10  # before a user's own filter chains at priority 0


# ---- parsing (pure): rates, times and percentages are nslab.units' one grammar ------------------------------
MIN_RATE, MAX_RATE = SHAPING_RATES  # a tbf: 8 kbit/s to 1 tbit/s


def parse_rate(value: str | int) -> int:
    """A rate limit (tc's '10mbit', '1mbps' = bytes, or iperf3's '100M') -> bits per second (nslab.units)."""
    return units.parse_rate(value, SHAPING_RATES)


def parse_groups(words: Sequence[str]) -> list[list[str]]:
    """['h1,h2', 'h3'] -> [['h1', 'h2'], ['h3']]: at least two groups, a node in at most one."""
    groups = [[n.strip() for n in w.split(",") if n.strip()] for w in words]
    if len(groups) < 2 or any(not g for g in groups):
        raise UsageError("partition: give at least two non-empty groups of nodes",
                         "groups are comma-separated node lists, e.g. 'partition LAB h1,h2 h3'")
    seen: dict[str, int] = {}
    for i, g in enumerate(groups):
        for n in g:
            if n in seen and seen[n] != i:
                raise UsageError(f"partition: node {n!r} is in two groups", "put each node in one group")
            seen[n] = i
    return [list(dict.fromkeys(g)) for g in groups]


def parse_grudge_words(words: Sequence[str]) -> dict[str, list[str]]:
    """['h1=h2,h3', 'h2=h1'] -> {'h1': ['h2', 'h3'], 'h2': ['h1']} (node = the nodes it drops traffic from)."""
    out: dict[str, list[str]] = {}
    for w in words:
        node, sep, rest = w.partition("=")
        srcs = [s.strip() for s in rest.split(",") if s.strip()]
        if not sep or not node.strip() or not srcs:
            raise UsageError(f"invalid grudge {w!r}", "write NODE=SRC[,SRC...]: NODE drops what the SRCs send it")
        out.setdefault(node.strip(), []).extend(srcs)
    return out


def parse_direction(text: str | None, a: str, b: str) -> list[tuple[str, str]]:
    """'both' (default), 'A->B' ('a-b'), 'B->A' ('b-a'), or with the real names 'h1->h2' -> [(src, dst), ...]."""
    t = (text or "both").strip()
    if t == "both":
        return [(a, b), (b, a)]
    if t in ("A->B", "a-b", f"{a}->{b}"):
        return [(a, b)]
    if t in ("B->A", "b-a", f"{b}->{a}"):
        return [(b, a)]
    raise UsageError(f"invalid direction {t!r}", f"write 'both', 'A->B' ({a}->{b}) or 'B->A' ({b}->{a})")


# ---- the record (what the user asked for) ------------------------------------------------------------
End = tuple[str, str]  # (node, ifname)


@dataclass
class Impairment:
    """Impairments of ONE direction of one link (None: not set)."""

    loss: float | None = None  # percent
    duplicate: float | None = None  # percent
    rate: int | None = None  # bits/s
    netem: dict[str, Any] = field(default_factory=dict)  # nslab.netem's canonical values (delay, jitter, ...)

    def empty(self) -> bool:
        return not self.loss and not self.duplicate and not self.rate and not self.netem

    def qdisc(self) -> Netem | None:
        """The netem qdisc this direction needs (None: none)."""
        return Netem.from_values(self.netem, self.loss)

    def nft_loss(self) -> float | None:
        """The loss nftables does (at the receiver): all of it, unless netem does it (with a correlation)."""
        return None if self.netem.get("loss_correlation") else self.loss

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.loss:
            d["loss"] = self.loss
        if self.duplicate:
            d["duplicate"] = self.duplicate
        if self.rate:
            d["rate"] = format_rate(self.rate)
            d["rate_bps"] = self.rate
        d.update(self.netem)
        q = self.qdisc()
        if q is not None:
            d["netem"] = q.text()
        return d


@dataclass
class FaultState:
    lab: str
    links_down: list[tuple[str, str, str, str]] = field(default_factory=list)  # (a, ifa, b, ifb), plan order
    stopped: dict[str, list[int]] = field(default_factory=dict)  # node -> pids we SIGSTOPped
    grudge: dict[str, list[str]] = field(default_factory=dict)  # receiver -> senders it drops
    impair: dict[tuple[str, str, str, str], Impairment] = field(default_factory=dict)  # (src, ifs, dst, ifd)
    procs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # node -> (pid, start time) stopped
    pending: bool = False  # written before a change reaches the kernel; cleared once it has

    def empty(self) -> bool:
        return not (self.links_down or self.stopped or self.grudge or self.impair)

    def copy(self) -> FaultState:
        return FaultState.from_json(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "links_down": [list(k) for k in self.links_down],
            "stopped": {k: list(v) for k, v in self.stopped.items()},
            "grudge": {k: sorted(v) for k, v in sorted(self.grudge.items())},
            "impair": [{"link": list(k), "loss": v.loss, "duplicate": v.duplicate, "rate": v.rate,
                        **({"netem": v.netem} if v.netem else {})} for k, v in self.impair.items()],
            "stopped_procs": {k: [list(p) for p in v] for k, v in self.procs.items()},
            "pending": self.pending,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FaultState:
        return cls(
            lab=d["lab"],
            links_down=[(k[0], k[1], k[2], k[3]) for k in d.get("links_down", [])],
            stopped={k: list(v) for k, v in d.get("stopped", {}).items()},
            grudge={k: list(v) for k, v in d.get("grudge", {}).items()},
            impair={(i["link"][0], i["link"][1], i["link"][2], i["link"][3]):
                    Impairment(i.get("loss"), i.get("duplicate"), i.get("rate"), dict(i.get("netem", {})))
                    for i in d.get("impair", [])},
            procs={k: [(int(p[0]), int(p[1])) for p in v] for k, v in d.get("stopped_procs", {}).items()},
            pending=bool(d.get("pending", False)),
        )


def _record_path(lab: str) -> str:
    return os.path.join(FAULT_DIR, f"{lab}.json")


def load_state(lab: str) -> FaultState:
    try:
        with open(_record_path(lab)) as f:
            return FaultState.from_json(json.load(f))
    except FileNotFoundError:
        return FaultState(lab)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise NslabError(f"the fault record of lab {lab!r} is unreadable ({exc})",
                         f"run 'nslab lab down {lab}' and up again") from None


def save_state(state: FaultState) -> None:
    if state.empty() and not state.pending:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_record_path(state.lab))
        return
    os.makedirs(FAULT_DIR, mode=0o755, exist_ok=True)
    tmp = _record_path(state.lab) + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(state.to_json(), f)
        os.replace(tmp, _record_path(state.lab))
    except BaseException:  # a Ctrl-C mid-write leaves no half file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ---- plan lookups (pure) -------------------------------------------------------------------------------
def links_between(plan: Plan, a: str, b: str) -> list[tuple[IfacePlan, IfacePlan]]:
    """Links joining A and B, each as (A's end, B's end)."""
    plan.node(a)
    plan.node(b)
    out = []
    for lk in plan.links:
        if lk.a.node == a and lk.b.node == b:
            out.append((lk.a, lk.b))
        elif lk.a.node == b and lk.b.node == a:
            out.append((lk.b, lk.a))
    return out


def find_link(plan: Plan, a: str, b: str, iface: str | None = None) -> tuple[IfacePlan, IfacePlan]:
    """The link between A and B (A's end first); with several, IFACE (A's interface name) picks one."""
    if a == b:
        raise UsageError(f"a link needs two different nodes, not {a!r} twice", "name both ends: LAB A B")
    found = links_between(plan, a, b)
    if not found:
        near = sorted({(lk.b.node if lk.a.node == a else lk.a.node)
                       for lk in plan.links if a in (lk.a.node, lk.b.node)})
        raise UsageError(f"lab {plan.lab!r} has no link between {a!r} and {b!r}",
                         f"{a}'s neighbours: {', '.join(near) or 'none'} (a fault acts on one link: name its two "
                         "ends; nodes on a switch are linked to the switch)")
    if iface is not None:
        pick = [f for f in found if iface in (f[0].ifname, f"{a}:{f[0].ifname}")]
        if not pick:
            raise UsageError(f"{a!r} has no interface {iface!r} towards {b!r}",
                             "choose --iface from: " + ", ".join(f[0].ifname for f in found))
        return pick[0]
    if len(found) > 1:
        raise UsageError(f"{a!r} and {b!r} are joined by {len(found)} links",
                         "choose one with --iface (A's interface): " + ", ".join(f[0].ifname for f in found))
    return found[0]


def _link_key(plan: Plan, ea: IfacePlan, eb: IfacePlan) -> tuple[str, str, str, str]:
    """The plan's own orientation of the link with ends EA, EB (so one link has one key)."""
    for lk in plan.links:
        if lk.a == ea and lk.b == eb:
            return (ea.node, ea.ifname, eb.node, eb.ifname)
    return (eb.node, eb.ifname, ea.node, ea.ifname)


def _bare_addresses(plan: Plan, node: str) -> tuple[list[str], list[str]]:
    v4: list[str] = []
    v6: list[str] = []
    for cidr in plan.addresses_of(node):
        ip = ipaddress.ip_interface(cidr).ip
        (v4 if ip.version == 4 else v6).append(str(ip))
    return v4, v6


# ---- rendering (pure): the record -> kernel state, per namespace ---------------------------------------------
def render_nft(plan: Plan, state: FaultState, node: str) -> str:
    """The nft script that makes NODE's nslab tables match STATE (reset + rebuild, one transaction)."""
    from .kernel.nft import TABLE, reset_script

    out = [reset_script()]
    kind = plan.node(node).kind
    senders = sorted(set(state.grudge.get(node, [])))
    v4: list[str] = []
    v6: list[str] = []
    for s in senders:
        a4, a6 = _bare_addresses(plan, s)
        v4 += a4
        v6 += a6
    if v4 or v6:
        out.append(f"table inet {TABLE} {{\n")
        rules = []
        if v4:
            out.append(f"\tset drop4 {{\n\t\ttype ipv4_addr\n\t\telements = {{ {', '.join(v4)} }}\n\t}}\n")
            rules.append("ip saddr @drop4 counter drop")
        if v6:
            out.append(f"\tset drop6 {{\n\t\ttype ipv6_addr\n\t\telements = {{ {', '.join(v6)} }}\n\t}}\n")
            rules.append("ip6 saddr @drop6 counter drop")
        hooks = ["input", "forward"] if kind == "router" else ["input"]
        for hook in hooks:
            out.append(f"\tchain {hook}_partition {{\n\t\ttype filter hook {hook} priority {PRIORITY}; "
                       f"policy accept;\n" + "".join(f"\t\t{r}\n" for r in rules) + "\t}\n")
        out.append("}\n")
    chains = []
    ifaces = plan.interfaces_of(node)
    for i, end in enumerate(ifaces):
        for key, imp in sorted(state.impair.items()):
            src, ifs, dst, ifd = key
            loss = imp.nft_loss()
            if dst == node and ifd == end.ifname and loss:
                chains.append(f"\tchain in_{i} {{\n\t\ttype filter hook ingress device \"{end.ifname}\" priority "
                              f"{PRIORITY}; policy accept;\n\t\t{_chance(loss)}counter drop "
                              f"comment \"loss {src}->{dst}\"\n\t}}\n")
            if src == node and ifs == end.ifname and imp.duplicate:
                # The copy passes this hook again: it carries DUP_BIT then, so it is never copied again.
                chains.append(f"\tchain out_{i} {{\n\t\ttype filter hook egress device \"{end.ifname}\" priority "
                              f"{PRIORITY}; policy accept;\n\t\tmeta mark & {DUP_BIT:#x} == 0 "
                              f"{_chance(imp.duplicate)}meta mark set meta mark | {DUP_BIT:#x} counter "
                              f"dup to \"{end.ifname}\" meta mark set meta mark & {~DUP_BIT & 0xFFFFFFFF:#x} "
                              f"comment \"duplicate {src}->{dst}\"\n\t}}\n")
    if chains:
        out.append(f"table netdev {TABLE} {{\n" + "".join(chains) + "}\n")
    return "".join(out)


def _chance(percent: float) -> str:
    """The nft match that is true for PERCENT % of packets ('' at 100 %)."""
    n = round(percent * NUMGEN_MOD / 100)
    return "" if n >= NUMGEN_MOD else f"numgen random mod {NUMGEN_MOD} < {n} "


def render_rates(plan: Plan, state: FaultState) -> dict[End, int]:
    """(node, ifname) -> bits/s for every sending end with a rate limit."""
    return {(k[0], k[1]): imp.rate for k, imp in state.impair.items() if imp.rate}


def render_netem(plan: Plan, state: FaultState) -> dict[End, Netem]:
    """(node, ifname) -> the netem qdisc of every sending end that needs one."""
    return {(k[0], k[1]): q for k, imp in state.impair.items() if (q := imp.qdisc()) is not None}


def render_links(plan: Plan, state: FaultState) -> dict[End, bool]:
    """(node, ifname) -> wanted admin state, for every link end of the lab."""
    down: set[End] = set()
    for a, ifa, b, ifb in state.links_down:
        down |= {(a, ifa), (b, ifb)}
    for node in state.stopped:
        down |= {(node, i.ifname) for i in plan.interfaces_of(node)}
    return {(e.node, e.ifname): (e.node, e.ifname) not in down for lk in plan.links for e in (lk.a, lk.b)}


def view(plan: Plan, state: FaultState) -> reconcile.Faults:
    """What STATE changes in the lab's desired state, for the reconcile engine. Pure."""
    from .kernel.nft import reset_script

    down = frozenset(e for e, up in render_links(plan, state).items() if not up)
    reset = reset_script()
    scripts = {}
    for node in sorted(set(state.grudge) | {k[0] for k in state.impair} | {k[2] for k in state.impair}):
        script = render_nft(plan, state, node)
        if script != reset:
            scripts[node] = script
    return reconcile.Faults(down, scripts, render_rates(plan, state), render_netem(plan, state))


# ---- stopped processes: signalled only while provably the ones stopped --------------------------------------
def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: when the process started (clock ticks since boot). With the pid it names
    one process for the whole uptime: a reused pid has another start time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _netns_inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def signal_procs(netns: str, procs: Iterable[tuple[int, int]], sig: signal.Signals) -> list[int]:
    """Send SIG to each (pid, start time) that is still that process AND in namespace NETNS; return the pids
    signalled. A pidfd is opened first and the checks made after, so the signal cannot reach a process
    that took the pid meanwhile. For SIGSTOP, wait (up to 1 s) until each is stopped."""
    want = _netns_inode(os.path.join("/run/netns", netns))
    if want is None:
        return []
    sent = []
    for pid, start in procs:
        try:
            fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except OSError:
            fd = None  # a kernel without pidfds (< 5.3): the checks just before the kill are the proof
        try:
            if start_time(pid) != start or _netns_inode(f"/proc/{pid}/ns/net") != want:
                continue  # gone, reused, or no longer in the node: not ours to signal
            if fd is not None:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)
            sent.append(pid)
        except ProcessLookupError:
            continue
        finally:
            if fd is not None:
                os.close(fd)
    if sig == signal.SIGSTOP:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(_proc_state(p) not in (None, "T", "t", "Z", "X") for p in sent):
            time.sleep(0.005)
    return sent


def _node_procs(netns: str) -> list[tuple[int, int]]:
    """(pid, start time) of the processes in NETNS now (not this one)."""
    from .kernel import netns as kn

    me = os.getpid()
    return [(p, t) for p in kn.pids(netns) if p != me and (t := start_time(p)) is not None]


def wait_for_cut_off_tools(plan: Plan, timeout: float = 5.0) -> None:
    """A change cut off by kill -9 may have left its last `nft` or `tc` running in a node (a child outlives
    its parent): let it finish before the kernel is read, or its rules would land after the repair."""
    from .kernel import procs

    inodes = [i for n in plan.nodes if (i := _netns_inode(os.path.join("/run/netns", n.netns))) is not None]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = []
        for pid in procs.pids_in(inodes):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() in ("nft", "tc"):
                        busy.append(pid)
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.01)


# ---- committing a change: intent first, then the kernel through the reconcile engine ------------------------
def _scope(plan: Plan, old: FaultState, new: FaultState, everywhere: bool,
           extra: Iterable[str]) -> tuple[set[str], set[str], set[End]]:
    """(nodes to reconcile, nodes whose nft rules must be rewritten, ends whose rate must be rewritten)."""
    vo, vn = view(plan, old), view(plan, new)
    if old.pending:
        # The last change was cut off (kill -9): any node may hold any mix of old and new. Rewrite it all.
        return {n.name for n in plan.nodes}, set(vn.nft), vn.shaped
    force_nft = {n for n in set(vo.nft) | set(vn.nft) if vo.nft.get(n) != vn.nft.get(n)}
    force_rates = {e for e in vo.shaped | vn.shaped
                   if (vo.rates.get(e), vo.netem.get(e)) != (vn.rates.get(e), vn.netem.get(e))}
    if everywhere:
        return {n.name for n in plan.nodes}, force_nft, force_rates
    touched = (force_nft | {e[0] for e in force_rates} | {e[0] for e in vo.down ^ vn.down}
               | (set(old.stopped) ^ set(new.stopped)) | set(extra))
    return reconcile.affected(plan, touched), force_nft, force_rates


def _commit(lab: LabView, old: FaultState, new: FaultState, everywhere: bool = False,
            extra: Iterable[str] = ()) -> None:
    """Record NEW as intent, then bring the kernel to the plan under NEW; on failure, back to OLD."""
    from .shield import run_cleanup

    plan = lab.plan
    netns = {n.name: n.netns for n in plan.nodes}
    if old.pending:
        wait_for_cut_off_tools(plan)
    nodes, force_nft, force_rates = _scope(plan, old, new, everywhere, extra)
    new.pending = False
    intent = new.copy()
    intent.pending = True
    save_state(intent)
    resumed: list[str] = []
    try:
        # Processes first on start (SIGCONT before the links come back), last on stop.
        for node, procs in old.procs.items():
            if node not in new.stopped:
                signal_procs(netns[node], procs, signal.SIGCONT)
                resumed.append(node)
        reconcile.reconcile(plan, view(plan, new), nodes, previous=view(plan, old), force_nft=force_nft,
                            force_rates=force_rates, before_apply=_refuse_broken)
        for node, procs in new.procs.items():
            if node not in old.stopped or old.pending:
                signal_procs(netns[node], procs, signal.SIGSTOP)
    except BaseException:

        def back() -> None:
            for node in resumed:
                signal_procs(netns[node], old.procs.get(node, []), signal.SIGSTOP)
            save_state(old)

        run_cleanup(back)
        raise
    save_state(new)


def _refuse_broken(rep: reconcile.Report) -> None:
    """Before anything is changed: a node concerned that cannot be its plan (its namespace or an interface
    deleted by hand) makes the whole change fail, with the fix."""
    if rep.fatal:
        raise NslabError("the lab cannot be brought back to its plan: " + "; ".join(n.line() for n in rep.fatal)
                         + "; nothing was changed", "take the lab down and up again")


@contextlib.contextmanager
def _change(lab: LabView, everywhere: bool = False,
            extra: Iterable[str] = ()) -> Iterator[tuple[FaultState, FaultState]]:
    """Lock the lab, hand out (old, new) records; the caller edits NEW; then record and apply it.
    EVERYWHERE: reconcile every node of the lab (heal, clear_all: whatever the record says)."""
    from .lab import state as st

    with st.locked(lab.name):
        old = load_state(lab.name)
        new = old.copy()
        yield old, new
        _commit(lab, old, new, everywhere, extra)


# ---- the API ------------------------------------------------------------------------------------------------
@ev.recorded(ev.on_link_state)
def link_state(lab: LabView, a: str, b: str, up: bool, iface: str | None = None) -> None:
    """Set the link between A and B down (both veth ends) or up again. Idempotent."""
    ea, eb = find_link(lab.plan, a, b, iface)
    key = _link_key(lab.plan, ea, eb)
    with _change(lab, extra=[a, b]) as (_, new):
        if up:
            new.links_down = [k for k in new.links_down if k != key]
        elif key not in new.links_down:
            new.links_down.append(key)


@ev.recorded(ev.on_flap, inner=True, begin="flap-start")
def flap(lab: LabView, a: str, b: str, period: float, count: int, iface: str | None = None) -> None:
    """COUNT times: the link down for PERIOD/2 seconds, then up for PERIOD/2. Ends up, even on Ctrl-C."""
    if not 0.02 <= period <= 3600:
        raise UsageError(f"invalid flap period {period!r} s", "give a period from 0.02 to 3600 seconds")
    if not 1 <= count <= 100000:
        raise UsageError(f"invalid flap count {count!r}", "give a count from 1 to 100000")
    find_link(lab.plan, a, b, iface)
    try:
        for _ in range(count):
            link_state(lab, a, b, False, iface)
            time.sleep(period / 2)
            link_state(lab, a, b, True, iface)
            time.sleep(period / 2)
    finally:
        link_state(lab, a, b, True, iface)


@ev.recorded(ev.on_node_stop)
def node_stop(lab: LabView, node: str) -> list[int]:
    """Freeze NODE: every interface of it down and its processes SIGSTOPped. Returns the stopped pids."""
    ns = lab.plan.node(node).netns
    with _change(lab) as (old, new):
        if node in old.stopped:
            return old.stopped[node]
        new.procs[node] = _node_procs(ns)
        new.stopped[node] = [p for p, _ in new.procs[node]]
        return new.stopped[node]


@ev.recorded(ev.on_node_start)
def node_start(lab: LabView, node: str) -> None:
    """Undo node_stop: SIGCONT the processes it stopped, interfaces up (except links that are down)."""
    lab.plan.node(node)
    with _change(lab, extra=[node]) as (_, new):
        new.stopped.pop(node, None)
        new.procs.pop(node, None)


def _check_partition_nodes(plan: Plan, nodes: Iterable[str]) -> None:
    for n in nodes:
        if plan.node(n).kind == "switch":
            raise UsageError(f"node {n!r} is a switch: it has no address to partition",
                             "partition hosts and routers; to cut a switch off, set its links down")


@ev.recorded(ev.on_grudge)
def grudge(lab: LabView, mapping: Mapping[str, Iterable[str]]) -> None:
    """Jepsen's grudge: each node drops everything the listed nodes send it (added to current partitions)."""
    plan = lab.plan
    clean = {k: sorted(set(v)) for k, v in mapping.items()}
    _check_partition_nodes(plan, list(clean) + [s for v in clean.values() for s in v])
    for k, v in clean.items():
        if k in v:
            raise UsageError(f"node {k!r} cannot hold a grudge against itself", "list other nodes")
    if not any(clean.values()):
        raise UsageError("partition: nothing to drop", "name at least one pair of nodes")
    with _change(lab) as (_, new):
        for k, v in clean.items():
            new.grudge[k] = sorted(set(new.grudge.get(k, [])) | set(v))


@ev.recorded(ev.on_partition)
def partition(lab: LabView, groups: Sequence[Sequence[str]]) -> None:
    """Symmetric partition: nodes in different groups no longer reach each other (nodes not listed: untouched)."""
    if len(groups) < 2:
        raise UsageError("partition: give at least two groups", "e.g. partition LAB h1,h2 h3")
    grudge(lab, {n: [m for j, h in enumerate(groups) if j != i for m in h] for i, g in enumerate(groups) for n in g})


@ev.recorded(ev.on_partition_oneway)
def partition_oneway(lab: LabView, src: str | Sequence[str], dst: str | Sequence[str]) -> None:
    """One-way: DST drops what SRC sends it (DST's packets still reach SRC)."""
    srcs = [src] if isinstance(src, str) else list(src)
    dsts = [dst] if isinstance(dst, str) else list(dst)
    grudge(lab, {d: srcs for d in dsts})


@ev.recorded(ev.on_heal)
def heal(lab: LabView) -> None:
    """Remove every partition (grudge) of the lab. Impairments and link states stay. Every node is read
    back: nslab's rules the kernel holds go, whatever the record says, and the plan's routes come back."""
    with _change(lab, everywhere=True) as (_, new):
        new.grudge = {}


@ev.recorded(ev.on_impair)
def impair(lab: LabView, a: str, b: str, direction: str | None = "both", *, loss: str | float | None = None,
           rate: str | int | None = None, duplicate: str | float | None = None, corrupt: str | float | None = None,
           delay: str | float | None = None, jitter: str | float | None = None, reorder: str | float | None = None,
           iface: str | None = None, profile: str | None = None,
           delay_correlation: str | float | None = None, distribution: str | None = None,
           loss_correlation: str | float | None = None, loss_model: str | None = None,
           reorder_correlation: str | float | None = None, gap: str | int | None = None,
           corrupt_correlation: str | float | None = None, limit: str | int | None = None,
           field_name: Callable[[str], str] | None = None) -> None:
    """Set impairments on the link A-B in DIRECTION ('both', 'A->B', 'B->A'). Given values replace the ones
    set before (0 removes one); those not given stay. PROFILE: a named profile's values (nslab.lab.profiles),
    under the ones given. MORE: the other netem keys (delay_correlation, distribution, loss_correlation,
    loss_model, reorder_correlation, gap, corrupt_correlation, limit). delay, jitter, reorder, corrupt and
    correlated or modelled loss need netem: without it, FeatureMissing and nothing applied.
    FIELD_NAME: how errors name a key (the CLI passes its option names)."""
    from .lab.profiles import expand

    name = field_name or (lambda k: k)
    more = {"delay_correlation": delay_correlation, "distribution": distribution, "loss_correlation": loss_correlation,
            "loss_model": loss_model, "reorder_correlation": reorder_correlation, "gap": gap,
            "corrupt_correlation": corrupt_correlation, "limit": limit}
    plan = lab.plan
    ea, eb = find_link(plan, a, b, iface)
    dirs = parse_direction(direction, a, b)
    given: dict[str, Any] = {k: v for k, v in {"loss": loss, "rate": rate, "duplicate": duplicate, "corrupt": corrupt,
                                               "delay": delay, "jitter": jitter, "reorder": reorder, **more}.items()
                             if v is not None}
    if profile is not None:
        given = expand({**given, "profile": profile}, None, name)
    p_loss = None if given.get("loss") is None else parse_percent(given["loss"], f"{name('loss')} percentage")
    p_dup = None if given.get("duplicate") is None else parse_percent(given["duplicate"],
                                                                      f"{name('duplicate')} percentage")
    r = given.get("rate")
    p_rate = None if r is None else (0 if r in (0, "0") else parse_rate(r))
    values = check_values(given, name)
    if p_loss is None and p_dup is None and p_rate is None and not values:
        raise UsageError("impair: nothing to change", "give --loss, --rate, --delay ... or --profile (or --clear)")
    wanted = netem_wanted(values)
    if wanted:
        need_netem(plan, dirs[0][0], wanted)
    ends = {a: ea, b: eb}
    with _change(lab) as (_, new):
        for src, dst in dirs:
            key = (src, ends[src].ifname, dst, ends[dst].ifname)
            _merge_impairment(new, key, p_loss, p_dup, p_rate, values, name)


def need_netem(plan: Plan, src: str, wanted: Sequence[str]) -> None:
    """FeatureMissing (exit 1, nothing applied) unless the kernel has the netem qdisc (probed in SRC's
    namespace: a netem added to its lo under a probe handle, deleted at once)."""
    from .kernel import tc

    if not tc.have_qdisc(plan.node(src).netns, "netem"):
        raise FeatureMissing(f"{', '.join(wanted)} need{'s' if len(wanted) == 1 else ''} the netem qdisc: the "
                             "kernel lacks sch_netem; nothing was applied",
                             "load it ('modprobe sch_netem'), or install the kernel's extra modules (e.g. "
                             "'apt-get install linux-modules-extra-$(uname -r)' on Ubuntu; Debian's stock kernel "
                             "has it); --loss, --duplicate and --rate work without netem")


def _merge_impairment(new: FaultState, key: tuple[str, str, str, str], loss: float | None, dup: float | None,
                      rate: int | None, netem: Mapping[str, Any] | None = None,
                      name: Callable[[str], str] = lambda k: k) -> None:
    """Given values replace the ones set before (0 removes one); None keeps it. Raises UsageError (naming
    the field with NAME) when the result is a combination netem cannot do."""
    cur = new.impair.get(key, Impairment())
    merged = dict(cur.netem)
    for k, v in (netem or {}).items():
        if v in (0, 0.0, ""):
            merged.pop(k, None)
        else:
            merged[k] = v
    imp = Impairment(cur.loss if loss is None else loss or None, cur.duplicate if dup is None else dup or None,
                     cur.rate if rate is None else rate or None, merged)
    if imp.empty():
        new.impair.pop(key, None)
    else:
        Netem.from_values(imp.netem, imp.loss, name)  # a combination netem can do (else UsageError)
        new.impair[key] = imp


def apply_declared(lab: LabView) -> None:
    """The impairments the plan declares (the file's `impair:`) into the fault record and the kernel, as
    `impair` would set them. For `Lab.up`: it holds the lab's lock (so none is taken here) and rolls the whole
    lab back when this raises; on a failure part-way the record and the kernel are put back first."""
    plan = lab.plan
    for ip in plan.impairments:
        if ip.loss is None and ip.duplicate is None and ip.rate is None and not ip.netem:
            raise UsageError("impair: nothing to change", "give --loss, --rate or --duplicate (or --clear)")
        if ip.netem:
            need_netem(plan, ip.src, ip.netem)
    if not plan.impairments:
        return
    old = load_state(lab.name)
    new = old.copy()
    for ip in plan.impairments:
        _merge_impairment(new, (ip.src, ip.src_ifname, ip.dst, ip.dst_ifname), ip.loss, ip.duplicate, ip.rate,
                          ip.values)
    _commit(lab, old, new)


@ev.recorded(ev.on_clear)
def clear(lab: LabView, a: str, b: str, direction: str | None = "both", iface: str | None = None) -> None:
    """Remove the impairments of link A-B (in DIRECTION). Idempotent."""
    ea, eb = find_link(lab.plan, a, b, iface)
    ends = {a: ea, b: eb}
    dirs = parse_direction(direction, a, b)
    with _change(lab, extra=[a, b]) as (_, new):
        for src, dst in dirs:
            new.impair.pop((src, ends[src].ifname, dst, ends[dst].ifname), None)


def describe(state: FaultState) -> list[dict[str, Any]]:
    """The record as a list of faults, one dict each (what `lab status` shows)."""
    out: list[dict[str, Any]] = []
    for a, ifa, b, ifb in state.links_down:
        out.append({"fault": "link-down", "a": a, "a_ifname": ifa, "b": b, "b_ifname": ifb})
    for node, pids in sorted(state.stopped.items()):
        out.append({"fault": "node-stopped", "node": node, "pids": pids})
    for node, srcs in sorted(state.grudge.items()):
        out.append({"fault": "drop-from", "node": node, "from": sorted(srcs)})
    for (src, ifs, dst, ifd), imp in sorted(state.impair.items()):
        out.append({"fault": "impair", "from": src, "from_ifname": ifs, "to": dst, "to_ifname": ifd,
                    **imp.to_json()})
    return out


def describe_line(f: Mapping[str, Any]) -> str:
    kind = f["fault"]
    if kind == "link-down":
        return f"link {f['a']}:{f['a_ifname']} - {f['b']}:{f['b_ifname']} down"
    if kind == "node-stopped":
        return f"node {f['node']} stopped ({len(f['pids'])} processes frozen)"
    if kind == "drop-from":
        return f"node {f['node']} drops traffic from {', '.join(f['from'])}"
    parts = [f"loss {f['loss']:g}%" if "loss" in f and "loss_correlation" not in f else "",
             f"duplicate {f['duplicate']:g}%" if "duplicate" in f else "", f"rate {f['rate']}" if "rate" in f else "",
             f"netem {f['netem']}" if "netem" in f else ""]
    return f"impair {f['from']}:{f['from_ifname']} -> {f['to']}:{f['to_ifname']}: " + ", ".join(p for p in parts if p)


def faults(lab: LabView | str) -> list[dict[str, Any]]:
    """Active faults of a lab (from its record), for `lab status`."""
    return describe(load_state(lab if isinstance(lab, str) else lab.name))


@ev.recorded(ev.on_clear_all)
def clear_all(lab: LabView) -> None:
    """Remove every fault: heal, clear impairments, links up, stopped nodes started. Idempotent."""
    with _change(lab, everywhere=True) as (_, new):
        new.links_down, new.stopped, new.grudge, new.impair, new.procs = [], {}, {}, {}, {}


def forget(lab: str) -> None:
    """For `lab down` (before deleting the namespaces): resume frozen processes so they can be terminated,
    then drop the record. Touches nothing else: the namespaces, and every rule and qdisc in them, go away.
    A recorded pid is resumed only while it is the process stopped, in that node's namespace."""
    from .lab import state as st

    with contextlib.suppress(NslabError):
        rec = st.load(lab)
        for node, procs in load_state(lab).procs.items():
            ns = rec.netns.get(node, f"{lab}-{node}") if rec is not None else f"{lab}-{node}"
            signal_procs(ns, procs, signal.SIGCONT)
    for p in (_record_path(lab), _record_path(lab) + ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


@ev.recorded(ev.on_restore)
def restore(lab: LabView, state: FaultState) -> None:
    """Put the lab's faults back to STATE (a record read earlier: a fault schedule's starting point), every
    node read back by the reconcile engine, as heal and clear_all do. Idempotent."""
    import dataclasses

    want = state.copy()
    with _change(lab, everywhere=True) as (_, new):
        for f in dataclasses.fields(new):
            if f.name not in ("lab", "pending"):
                setattr(new, f.name, getattr(want, f.name))
