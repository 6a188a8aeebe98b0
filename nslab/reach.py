"""All-pairs reachability of a lab (Mininet's `pingall`), probed concurrently from one thread.

ICMP (the default): one raw ICMP socket per source node, created inside the node's namespace through
`run_in_netns` (a socket stays in the namespace it was born in, so the I/O then runs here). Every echo
request of every pair is sent in one burst, and one selector loop reads the replies of all sockets. Each
source has its own ICMP id and each target its own sequence number, and the payload carries a per-run
token: replies are matched to their pair even with other pings running in the same namespaces.
Unanswered pairs are sent again every `retry` seconds until `timeout`, so a first packet lost to neighbour
(ARP/ND) resolution costs a retry, not a failure.

Semantics, per pair (src, dst): the target is dst's primary address (IPv4, or IPv6 with family=6), the
source address is the one the kernel picks. ok = an echo reply came back. Not ok, with a reason:
"timeout" (nothing within `timeout`), an ICMP error from on the path ("net unreachable from 10.0.0.1"),
or the error the kernel gave at send time ("network is unreachable": no route in the source).
A round trip cannot tell which way a packet was lost, so in ICMP mode the pairs that timed out are probed once
more, one way, with a receiver: a raw socket in the target's namespace that sees the echo requests arrive. A
pair whose requests arrive but whose replies never come back is "one way only" (the matrix shows '>'): the
direction src -> dst works, dst -> src is cut (a one-way partition), and it is not reported as failed as such.
TCP (proto="tcp", port): ok = the handshake completed (something listens on PORT); "connection refused"
means the host answered but nothing listens. UDP (proto="udp", port): ok = any datagram came back (an
echo service such as `nslab probe listen PORT --udp`); an ICMP port unreachable gives "connection refused";
silence gives "timeout". TCP and UDP use one socket per pair.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import resource
import secrets
import selectors
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .kernel.netns import run_in_netns
from .kernel.rtnl import Request, Rtnl
from .probe import REASONS, UDP_PAYLOAD, check_port

if TYPE_CHECKING:
    from .lab.plan import Plan
    from .lab.view import LabView

PROTOS = ("icmp", "tcp", "udp")
PINGALL_MAX = 24  # targets up to which a person gets Mininet's pingall rows (beyond: the summary)
Pair = tuple[str, str]

SOL_RAW = 255
ICMP_FILTER = 1  # SOL_RAW: a bitmask of the ICMP types to drop
ICMP6_FILTER = 1  # IPPROTO_ICMPV6: struct icmp6_filter, 256 bits, set = drop
_HDR = struct.Struct("!BBHHH")  # type, code, checksum, id, seq
_PAYLOAD = struct.Struct("!8sQ")  # run token, send time (ns): the RTT survives retries
_V4_UNREACH = {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
               4: "fragmentation needed", 9: "net prohibited", 10: "host prohibited", 13: "prohibited by filter"}
_V6_UNREACH = {0: "no route", 1: "prohibited by filter", 3: "address unreachable", 4: "port unreachable",
               5: "source address failed policy", 6: "reject route"}


@dataclass(frozen=True)
class PairResult:
    ok: bool
    rtt_ms: float | None
    reason: str  # "ok", or why not
    one_way: bool = False  # not ok, but src's packets reach dst (only dst -> src is cut)


@dataclass
class ReachResult:
    lab: str
    proto: str
    family: int
    port: int | None
    timeout: float
    sources: list[str]
    targets: list[str]
    addresses: dict[str, str | None]  # target -> the address probed
    pairs: dict[Pair, PairResult] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.pairs.values())

    @property
    def reachable(self) -> int:
        return sum(r.ok for r in self.pairs.values())

    @property
    def failed(self) -> list[Pair]:
        return [p for p, r in self.pairs.items() if not r.ok]

    @property
    def one_way(self) -> list[Pair]:
        """Pairs whose packets reach the target while the way back is cut."""
        return [p for p, r in self.pairs.items() if r.one_way]

    def summary(self) -> str:
        more = f" (and {len(self.one_way)} one way only)" if self.one_way else ""
        return f"{self.reachable}/{len(self.pairs)} pairs reachable{more} in {self.seconds:.2f} s"

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab, "proto": self.proto, "family": self.family, "port": self.port,
            "timeout": self.timeout, "seconds": round(self.seconds, 4), "ok": self.ok,
            "total": len(self.pairs), "reachable": self.reachable,
            "sources": self.sources, "targets": self.targets,
            "one_way": [{"from": s, "to": d} for s, d in self.one_way], "notes": self.notes,
            "pairs": [{"from": s, "to": d, "address": self.addresses.get(d), "ok": r.ok,
                       "rtt_ms": None if r.rtt_ms is None else round(r.rtt_ms, 3), "reason": r.reason}
                      for (s, d), r in self.pairs.items()],
        }

    def _mark(self, s: str, t: str) -> str:
        r = self.pairs.get((s, t))
        return "-" if s == t else " " if r is None else "." if r.ok else ">" if r.one_way else "X"

    def _notes(self, max_failures: int | None) -> list[str]:
        """The failed pairs with their reasons (up to MAX_FAILURES), the legend of '>', the notes."""
        lines = []
        failed = self.failed
        shown = failed if max_failures is None else failed[:max_failures]
        for s, t in shown:
            lines.append(f"  {s} -> {t} ({self.addresses.get(t) or 'no address'}): {self.pairs[(s, t)].reason}")
        if len(failed) > len(shown):
            lines.append(f"  ... and {len(failed) - len(shown)} more failed pairs (--failed lists them all; "
                         "--json has every pair)")
        if self.one_way:
            lines.append("  '>': one way only: the packets from the node on the left (the row) reach that target, "
                         "its replies do not come back (a one-way cut, e.g. a one-way partition)")
        return lines + [f"  note: {n}" for n in self.notes]

    def matrix_text(self, max_failures: int | None = 20) -> str:
        """Rows = from, columns = to; '.' reachable, 'X' not, '>' one way only, '-' itself. Column names are
        written top-down."""
        width = max((len(s) for s in self.sources), default=0)
        height = max((len(t) for t in self.targets), default=0)
        lines = []
        for k in range(height):
            cells = [t.rjust(height)[k] for t in self.targets]
            lines.append(" " * (width + 2) + " ".join(cells).rstrip())
        for s in self.sources:
            lines.append(s.ljust(width + 2) + " ".join(self._mark(s, t) for t in self.targets).rstrip())
        return "\n".join([*lines, *self._notes(max_failures), self.summary()])

    def pingall_text(self, max_failures: int | None = 20) -> str:
        """Mininet's `pingall`: `h1 -> h2 h3 X`, a target's name when it answered, X when not ('>' one way
        only), then Mininet's results line; our failed pairs, notes and summary follow."""
        lines = []
        for s in self.sources:
            marks = [t if self._mark(s, t) == "." else self._mark(s, t) for t in self.targets if s != t]
            lines.append(f"{s} -> {' '.join(marks)}".rstrip())
        total = len(self.pairs)
        got = self.reachable
        results = (f"*** Results: {int(100.0 * (total - got) / total)}% dropped ({got}/{total} received)"
                   if total else "*** Warning: No packets sent")
        return "\n".join(["*** Ping: testing ping reachability", *lines, results, *self._notes(max_failures),
                          self.summary()])

    def failed_text(self) -> str:
        """Only what failed (every pair, with its reason), then the summary: for big labs."""
        return "\n".join([*self._notes(None), self.summary()])

    def text(self, style: str = "auto") -> str:
        """The view for a person: `pingall` (up to PINGALL_MAX targets), `matrix`, `failed`, or `summary` (the
        failed pairs, up to 20, and the summary: what `auto` gives for big labs, where a matrix header alone
        would be thousands of characters wide)."""
        if style == "auto":
            style = "pingall" if len(self.targets) <= PINGALL_MAX else "summary"
        if style == "pingall":
            return self.pingall_text()
        if style == "matrix":
            return self.matrix_text()
        if style == "failed":
            return self.failed_text()
        if style == "summary":
            return "\n".join([*self._notes(20), self.summary()])
        raise UsageError(f"reach: unknown view {style!r}", "use auto, pingall, matrix, failed or summary")


# ---- the API --------------------------------------------------------------------------------------------
def reach(lab: LabView, sources: Sequence[str] | None = None, targets: Sequence[str] | None = None,
          timeout: float = 2.0, proto: str = "icmp", port: int | None = None, family: int = 4,
          retry: float = 0.25, one_way: bool = True) -> ReachResult:
    """Probe every (source, target) pair of distinct nodes; default nodes: the lab's hosts. one_way=False
    skips probing the pairs that timed out one way (ICMP), for callers that only need "all reachable?"."""
    if proto not in PROTOS:
        raise UsageError(f"reach: unknown protocol {proto!r}", "use icmp, tcp or udp")
    if proto == "icmp":
        if port is not None:
            raise UsageError("reach: a port only goes with tcp or udp", "drop the port, or pick --tcp/--udp PORT")
    else:
        port = check_port(port)
    if family not in (4, 6):
        raise UsageError(f"reach: address family {family!r}", "use 4 (IPv4) or 6 (IPv6)")
    if not timeout > 0:
        raise UsageError(f"reach: timeout {timeout!r} must be positive", "e.g. --timeout 2")
    plan = lab.plan
    default = [n.name for n in plan.nodes if n.kind == "host"] or [n.name for n in plan.nodes]
    srcs = _nodes(plan, sources, default)
    dsts = _nodes(plan, targets, default)
    addresses = {d: _address(plan, d, family) for d in dsts}
    res = ReachResult(lab.name, proto, family, port, timeout, srcs, dsts, addresses)
    t0 = time.perf_counter()
    todo: list[Pair] = []
    for s in srcs:
        for d in dsts:
            if s == d:
                continue
            if addresses[d] is None:
                res.pairs[(s, d)] = PairResult(False, None, f"{d} has no IPv{family} address")
            else:
                res.pairs[(s, d)] = PairResult(False, None, "timeout")  # keeps the matrix order
                todo.append((s, d))
    netns = {s: plan.node(s).netns for s in srcs}
    if proto == "icmp":
        found = _icmp(plan, todo, netns, addresses, family, timeout, retry)
        silent = [p for p in todo if p not in found]  # no reply, no error: which way was the packet lost?
        if silent and one_way:
            all_netns = {n.name: n.netns for n in plan.nodes}
            arrived, late = _one_way(plan, silent, all_netns, addresses, family, min(timeout, 0.5), retry)
            found.update(late)
            for s, d in arrived:
                if (s, d) not in found:
                    found[(s, d)] = PairResult(False, None, f"one way only: {s}'s requests reach {d}, the replies do "
                                                            f"not come back ({d} -> {s} is cut)", one_way=True)
    else:
        found = {}
        for group in _fd_groups(todo):
            found.update(_stream(group, netns, addresses, family, proto, port or 0, timeout, retry))
    res.pairs.update(found)
    if proto != "icmp" and not res.ok:
        res.notes += _oneway_notes(lab.name)
    res.seconds = time.perf_counter() - t0
    return res


def _oneway_notes(lab: str) -> list[str]:
    """A note when the lab's faults include one-way drops, which a TCP or UDP round trip cannot see."""
    from . import faults

    try:
        grudge = faults.load_state(lab).grudge
    except Exception:
        return []
    oneway = sorted((d, s) for d, srcs in grudge.items() for s in srcs if d not in grudge.get(s, []))
    if not oneway:
        return []
    shown = ", ".join(f"{s} -> {d}" for d, s in oneway[:5]) + (" ..." if len(oneway) > 5 else "")
    return [f"the lab has one-way partitions ({shown} dropped): a TCP or UDP round trip fails in both directions "
            "of such a pair; ICMP mode (no --tcp/--udp) tells the direction that works"]


def _nodes(plan: Plan, names: Sequence[str] | None, default: list[str]) -> list[str]:
    if names is None:
        return list(default)
    out: list[str] = []
    for name in names:
        plan.node(name)  # NotFoundError (exit 2) naming it and the known nodes
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError("reach: empty node list", "give node names separated by commas, e.g. h1,h2")
    return out


def _address(plan: Plan, node: str, family: int) -> str | None:
    for cidr in plan.addresses_of(node):
        iface = ipaddress.ip_interface(cidr)
        if iface.version == family:
            return str(iface.ip)
    return None


def _reason(err: int) -> str:
    return REASONS.get(err, errno_mod.errorcode.get(err, str(err)).lower())


# ---- ICMP: one raw socket per source ---------------------------------------------------------------------
def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _raw_socket(family: int, n_targets: int) -> socket.socket:
    if family == 4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        keep = (1 << 0) | (1 << 3) | (1 << 11)  # echo reply, unreachable, time exceeded
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~keep & 0xFFFFFFFF))
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        words = [0xFFFFFFFF] * 8
        for t in (129, 1, 3):  # echo reply, unreachable, time exceeded
            words[t >> 5] &= ~(1 << (t & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
    # Every target answers at once: room for all replies, so none is dropped before the loop reads it.
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, max(1 << 18, 2048 * n_targets))  # SO_RCVBUFFORCE (root)
    except OSError:
        pass
    sock.setblocking(False)
    return sock


def _receiver_socket(family: int, n_sources: int) -> socket.socket:
    """A raw ICMP socket that sees the echo requests arriving in its namespace (after the input filters)."""
    if family == 4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << 8) & 0xFFFFFFFF))  # echo requests only
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        words = [0xFFFFFFFF] * 8
        words[128 >> 5] &= ~(1 << (128 & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, n_sources * 2048 + (1 << 18))  # SO_RCVBUFFORCE: all arrivals
    except OSError:
        pass
    sock.setblocking(False)
    return sock


class _Receiver:
    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self.sock = sock


def _one_way(plan: Plan, todo: list[Pair], netns: dict[str, str], addresses: dict[str, str | None], family: int,
             window: float, retry: float) -> tuple[set[Pair], dict[Pair, PairResult]]:
    """Send TODO's echo requests again, up to WINDOW s per wave, with a receiver in each target: the pairs
    whose requests arrived, and any that got a reply this time. Waves and neighbour eviction as in _icmp: the
    neighbour table is one for all namespaces, and what this phase fills must not starve the next run."""
    by_src: dict[str, list[tuple[str, str]]] = {}
    for s, d in todo:
        by_src.setdefault(s, []).append((d, addresses[d] or ""))
    token = secrets.token_bytes(8)
    base = secrets.randbelow(1 << 16)
    out: dict[Pair, PairResult] = {}
    arrived: set[Pair] = set()
    sources: dict[str, _Source] = {}
    receivers: list[_Receiver] = []
    sel = selectors.DefaultSelector()
    evict = _Evictor(plan, addresses, family)
    try:
        for i, (s, targets) in enumerate(by_src.items()):
            n = len(targets)
            sock = run_in_netns(netns[s], lambda n=n: _raw_socket(family, n))  # type: ignore[misc]
            sources[s] = _Source(s, (base + i) & 0xFFFF, sock, targets)
            sel.register(sock, selectors.EVENT_READ, sources[s])
        senders: dict[str, int] = {}
        for _, d in todo:
            senders[d] = senders.get(d, 0) + 1
        for d, k in sorted(senders.items()):
            rx = _Receiver(d, run_in_netns(netns[d], lambda k=k: _receiver_socket(family, k)))  # type: ignore[misc]
            receivers.append(rx)
            sel.register(rx.sock, selectors.EVENT_READ, rx)
        by_ident = {src.ident: src for src in sources.values()}
        waves = _waves(todo, sources, _wave_size(family))
        for wave in waves:
            deadline: float | None = None  # WINDOW counts once the wave's requests are out (see _icmp)
            while deadline is None or time.perf_counter() < deadline:
                left = [(src, q) for src, q in wave if (src.name, src.targets[q][0]) not in arrived]
                if not left:
                    break
                for src, q in left:
                    src.pending.add(q)
                _send(left, family, token, out, sel, by_ident)
                if deadline is None:
                    deadline = time.perf_counter() + window
                next_send = min(deadline, time.perf_counter() + min(retry, 0.1))
                while (wait := next_send - time.perf_counter()) > 0:
                    for key, _ in sel.select(wait):
                        if isinstance(key.data, _Receiver):
                            _drain_arrivals(key.data, family, token, by_ident, arrived)
                        else:
                            _drain(key.data, family, token, out, by_ident)
            if len(waves) > 1:
                evict.forget([(src.name, src.targets[q][0]) for src, q in wave])
    finally:
        sel.close()
        for src in sources.values():
            src.sock.close()
        for rx in receivers:
            rx.sock.close()
        evict.close()
    return arrived, {p: r for p, r in out.items() if r.ok}


def _drain_arrivals(rx: _Receiver, family: int, token: bytes, by_ident: dict[int, _Source],
                    arrived: set[Pair]) -> None:
    while True:
        try:
            data, _ = rx.sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return
        if family == 4:
            data = data[(data[0] & 0x0F) * 4:] if data else data
        if len(data) < 8 + _PAYLOAD.size:
            continue
        kind, _, _, ident, seq = _HDR.unpack_from(data)
        src = by_ident.get(ident)
        if kind not in (8, 128) or src is None or seq >= len(src.targets) or src.targets[seq][0] != rx.name:
            continue
        if _PAYLOAD.unpack_from(data, 8)[0] == token:
            arrived.add((src.name, rx.name))


class _Source:
    def __init__(self, name: str, ident: int, sock: socket.socket, targets: list[tuple[str, str]]) -> None:
        self.name = name
        self.ident = ident
        self.sock = sock
        self.targets = targets  # seq -> (node, address)
        self.pending: set[int] = set()


def _icmp(plan: Plan, todo: list[Pair], netns: dict[str, str], addresses: dict[str, str | None], family: int,
          timeout: float, retry: float) -> dict[Pair, PairResult]:
    by_src: dict[str, list[tuple[str, str]]] = {}
    for s, d in todo:
        by_src.setdefault(s, []).append((d, addresses[d] or ""))
    token = secrets.token_bytes(8)
    base = secrets.randbelow(1 << 16)
    out: dict[Pair, PairResult] = {}
    sources: dict[str, _Source] = {}
    sel = selectors.DefaultSelector()
    evict = _Evictor(plan, addresses, family)
    try:
        for i, (s, targets) in enumerate(by_src.items()):
            n = len(targets)
            sock = run_in_netns(netns[s], lambda n=n: _raw_socket(family, n))  # type: ignore[misc]
            sources[s] = _Source(s, (base + i) & 0xFFFF, sock, targets)
            sel.register(sock, selectors.EVENT_READ, sources[s])
        by_ident = {src.ident: src for src in sources.values()}
        waves = _waves(todo, sources, _wave_size(family))
        for wave in waves:
            # Each wave has the whole timeout once its requests are out: a deadline shared by all waves, or
            # one set before sending, left nothing to wait with on a loaded machine (right after a 300-host
            # star came up, each sendto took ~7 ms, ARP floods included: the 299 sends alone ate the 2 s).
            deadline: float | None = None
            for src, seq in wave:
                src.pending.add(seq)
            # A short retry inside a wave: a packet dropped because the neighbour table was full is
            # the common loss, and the kernel has made room by the time it is sent again.
            pause = retry if len(wave) == len(todo) else min(retry, 0.02)
            while ((left := [(src, q) for src, q in wave if q in src.pending])
                   and (deadline is None or time.perf_counter() < deadline)):
                _send(left, family, token, out, sel, by_ident)
                if deadline is None:
                    deadline = time.perf_counter() + timeout
                next_send = time.perf_counter() + pause
                while any(q in src.pending for src, q in left):
                    wait = min(next_send, deadline) - time.perf_counter()
                    if wait <= 0:
                        break
                    for key, _ in sel.select(wait):
                        _drain(key.data, family, token, out, by_ident)
            if len(waves) > 1:
                evict.forget([(src.name, src.targets[q][0]) for src, q in wave])
    finally:
        sel.close()
        for src in sources.values():
            src.sock.close()
        evict.close()
    return out


def _wave_size(family: int) -> int:
    """Neighbour (ARP/ND) entries a wave may make: most of the free room in the kernel's neighbour table.

    That table is ONE for all namespaces, capped at gc_thresh3 (1024 by default), and an entry that
    was just confirmed (REACHABLE, 15-45 s) cannot be evicted to make room. On one LAN every pair needs
    an entry on each side, so 100 hosts need 9 900: one burst gets ~1 000 answers and the rest are lost
    for good (dmesg: "neighbour table overflow"). So when the room is short, pairs go in waves, both
    directions of a pair in the same wave (they share the pair's two entries), and the entries of a
    wave are deleted after it. A quarter of the room is kept for other labs' traffic meanwhile.
    """
    def read(path: str, default: int, base: int = 10) -> int:
        try:
            with open(path) as f:
                return int(f.read().split()[0] if base == 10 else f.readlines()[1].split()[0], base)
        except (OSError, ValueError, IndexError):
            return default

    cap = read(f"/proc/sys/net/ipv{family}/neigh/default/gc_thresh3", 1024)
    used = read("/proc/net/stat/" + ("arp_cache" if family == 4 else "ndisc_cache"), 0, 16)
    return max(128, (cap - used - 64) * 3 // 4)


def _waves(todo: list[Pair], sources: dict[str, _Source], entries: int) -> list[list[tuple[_Source, int]]]:
    """TODO in waves that each make at most ENTRIES neighbour entries: two per pair of nodes, whether one
    or both of its directions are probed."""
    seq = {(src.name, d): q for src in sources.values() for q, (d, _) in enumerate(src.targets)}
    for src in sources.values():
        src.pending.clear()
    waves: list[list[tuple[_Source, int]]] = [[]]
    used = 0
    seen: set[Pair] = set()
    for s, d in todo:  # (s, d) then (d, s): the two directions share their two neighbour entries
        group = [p for p in ((s, d), (d, s)) if p in seq and p not in seen]
        if not group:
            continue
        if used + 2 > entries and waves[-1]:
            waves.append([])
            used = 0
        used += 2
        for p in group:
            seen.add(p)
            waves[-1].append((sources[p[0]], seq[p]))
    return waves if waves[-1] else []


def _send(pairs: list[tuple[_Source, int]], family: int, token: bytes, out: dict[Pair, PairResult],
          sel: selectors.BaseSelector, by_ident: dict[int, _Source]) -> None:
    for sent, (src, seq) in enumerate(pairs, 1):
        node, addr = src.targets[seq]
        body = _PAYLOAD.pack(token, time.perf_counter_ns())
        if family == 4:
            csum = _checksum(_HDR.pack(8, 0, 0, src.ident, seq) + body)
            pkt = _HDR.pack(8, 0, csum, src.ident, seq) + body
        else:
            pkt = _HDR.pack(128, 0, 0, src.ident, seq) + body  # the kernel sums ICMPv6
        try:
            src.sock.sendto(pkt, (addr, 0))
        except (BlockingIOError, InterruptedError):
            pass  # buffer full: the next round sends it again
        except OSError as exc:
            if exc.errno != errno_mod.ENOBUFS:
                src.pending.discard(seq)
                out[(src.name, node)] = PairResult(False, None, _reason(exc.errno or 0))
        if sent % 512 == 0:  # read between sends: socket buffers stay short
            for key, _ in sel.select(0):
                if isinstance(key.data, _Source):  # receivers (one-way probing) are read by their own loop
                    _drain(key.data, family, token, out, by_ident)


def _drain(src: _Source, family: int, token: bytes, out: dict[Pair, PairResult],
           by_ident: dict[int, _Source]) -> None:
    while True:
        try:
            data, peer = src.sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return
        now = time.perf_counter_ns()
        if family == 4:
            data = data[(data[0] & 0x0F) * 4:] if data else data
        if len(data) < 8:
            continue
        kind, code, _, ident, seq = _HDR.unpack_from(data)
        if kind in (0, 129):  # echo reply
            if ident != src.ident or seq not in src.pending or len(data) < 8 + _PAYLOAD.size:
                continue
            tok, sent = _PAYLOAD.unpack_from(data, 8)
            if tok != token or peer[0] != src.targets[seq][1]:
                continue
            src.pending.discard(seq)
            out[(src.name, src.targets[seq][0])] = PairResult(True, (now - sent) / 1e6, "ok")
        else:
            _icmp_error(src, family, kind, code, data, peer[0], out)


def _icmp_error(src: _Source, family: int, kind: int, code: int, data: bytes, reporter: str,
                out: dict[Pair, PairResult]) -> None:
    # The error quotes our request: its IP header, then our ICMP header (id and seq name the pair).
    inner = data[8:]
    if family == 4:
        if len(inner) < 20:
            return
        inner = inner[(inner[0] & 0x0F) * 4:]
    else:
        inner = inner[40:]
    if len(inner) < 8:
        return
    _, _, _, ident, seq = _HDR.unpack_from(inner)
    if ident != src.ident or seq not in src.pending:
        return
    if family == 4:
        what = _V4_UNREACH.get(code, f"unreachable code {code}") if kind == 3 else "TTL exceeded (a routing loop?)"
    else:
        what = _V6_UNREACH.get(code, f"unreachable code {code}") if kind == 1 else "hop limit exceeded (a loop?)"
    src.pending.discard(seq)
    out[(src.name, src.targets[seq][0])] = PairResult(False, None, f"{what} (from {reporter})")


class _Evictor:
    """Deletes the neighbour entries a wave of pairs made, in both namespaces of each pair.

    Entries are a cache: a deleted one is resolved again on the next packet. Only lab namespaces are
    touched.
    """

    def __init__(self, plan: Plan, addresses: dict[str, str | None], family: int) -> None:
        self.plan = plan
        self.family = family
        self.addresses = dict(addresses)
        self.rtnl: dict[str, Rtnl] = {}
        self.ifindex: dict[str, dict[str, int]] = {}
        self.nets: dict[str, list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]] = {}
        self.onlink: dict[tuple[str, str], str | None] = {}
        self.packed: dict[str, bytes] = {}  # address -> its bytes: parsed once, not once per pair

    def _open(self, node: str) -> Rtnl:
        if node not in self.rtnl:
            self.rtnl[node] = Rtnl.open(self.plan.node(node).netns)
            self.ifindex[node] = {lk.ifname: lk.ifindex for lk in self.rtnl[node].links()}
        return self.rtnl[node]

    def _packed(self, addr: str) -> bytes:
        if addr not in self.packed:
            self.packed[addr] = ipaddress.ip_address(addr).packed
        return self.packed[addr]

    def _onlink(self, node: str, addr: str) -> str | None:
        key = (node, addr)
        if key not in self.onlink:
            ip = ipaddress.ip_address(self._packed(addr))
            nets = self.nets.get(node)
            if nets is None:
                nets = self.nets[node] = [(ipaddress.ip_interface(c).network, i.ifname)
                                          for i in self.plan.interfaces_of(node) for c in i.addresses]
            self.onlink[key] = next((dev for net, dev in nets if ip in net), None)
        return self.onlink[key]

    def forget(self, pairs: list[Pair]) -> None:
        reqs: dict[str, list[Request]] = {}
        for s, d in set(pairs) | {(d, s) for s, d in pairs}:
            if d not in self.addresses:
                self.addresses[d] = _address(self.plan, d, self.family)
            addr = self.addresses[d]
            dev = self._onlink(s, addr) if addr else None
            if addr is None or dev is None:
                continue  # routed: the entry is the gateway's, one per node, no need to evict
            self._open(s)
            index = self.ifindex[s].get(dev)
            if index is None:
                continue
            reqs.setdefault(s, []).append(Rtnl.req_del_neigh(index, addr, packed=self._packed(addr)))
        for node, batch in reqs.items():
            self.rtnl[node].run(batch)  # ENOENT (already gone) is fine: results ignored

    def close(self) -> None:
        for r in self.rtnl.values():
            r.close()
        self.rtnl.clear()


# ---- TCP and UDP: one socket per pair ----------------------------------------------------------------------
def _fd_groups(todo: list[Pair]) -> Iterable[list[Pair]]:
    """Pairs in groups that fit the open-file limit (raised to the hard limit when that helps)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < len(todo) + 256 and soft != hard:
        want = hard if hard == resource.RLIM_INFINITY else min(hard, len(todo) + 256)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    size = max(64, soft - 256)
    for i in range(0, len(todo), size):
        yield todo[i:i + size]


def _stream(todo: list[Pair], netns: dict[str, str], addresses: dict[str, str | None], family: int,
            proto: str, port: int, timeout: float, retry: float) -> dict[Pair, PairResult]:
    fam = socket.AF_INET if family == 4 else socket.AF_INET6
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    by_src: dict[str, list[str]] = {}
    for s, d in todo:
        by_src.setdefault(s, []).append(d)
    out: dict[Pair, PairResult] = {}
    socks: dict[socket.socket, tuple[Pair, int]] = {}  # -> pair, start time (ns)
    sel = selectors.DefaultSelector()
    try:
        for s, ds in by_src.items():
            k = len(ds)
            made = run_in_netns(netns[s], lambda k=k: [socket.socket(fam, kind) for _ in range(k)])  # type: ignore[misc]
            for d, sock in zip(ds, made, strict=True):
                sock.setblocking(False)
                socks[sock] = ((s, d), 0)
        deadline = time.perf_counter() + timeout
        for sock, (pair, _) in list(socks.items()):
            err = sock.connect_ex((addresses[pair[1]] or "", port))
            socks[sock] = (pair, time.perf_counter_ns())
            if err not in (0, errno_mod.EINPROGRESS):
                out[pair] = PairResult(False, None, _reason(err))
                del socks[sock]
                sock.close()
                continue
            if proto == "udp":
                _udp_send(sock)
            sel.register(sock, selectors.EVENT_WRITE if proto == "tcp" else selectors.EVENT_READ)
        next_send = time.perf_counter() + retry
        while sel.get_map() and (now := time.perf_counter()) < deadline:
            if proto == "udp" and now >= next_send:
                for key in list(sel.get_map().values()):
                    _udp_send(key.fileobj)  # type: ignore[arg-type]
                next_send = now + retry
            for key, _ in sel.select(min(next_send if proto == "udp" else deadline, deadline) - now):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                pair, start = socks[ready]
                result = _stream_event(ready, proto, start)
                if result is not None:
                    out[pair] = result
                    sel.unregister(ready)
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    return out


def _udp_send(sock: socket.socket) -> None:
    try:
        sock.send(UDP_PAYLOAD)
    except OSError:
        pass  # an error queued by an earlier ICMP (refused) shows on recv


def _stream_event(sock: socket.socket, proto: str, start: int) -> PairResult | None:
    rtt = (time.perf_counter_ns() - start) / 1e6
    if proto == "tcp":
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return PairResult(True, rtt, "ok") if err == 0 else PairResult(False, None, _reason(err))
    try:
        sock.recv(2048)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        return PairResult(False, None, _reason(exc.errno or 0))
    return PairResult(True, rtt, "ok")
