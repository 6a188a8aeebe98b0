"""Capture on any interface of any lab node: pcap files and a live one-line-per-packet view.

    with capture(lab, "h1", write="h1.pcap") as cap:     # streams to the file on a reader thread
        lab["h1"].run(["ping", "-c3", "h2"])
    print(cap.count, cap.drops)

    with capture(lab, "s1:eth1", count=4, filter="icmp") as cap:
        for pkt in cap:                                  # or iterate: packets as they arrive
            print(pkt.line())

Memory stays flat however long the capture runs: packets go to the file (and to an iterating caller through
a bounded queue) and are not kept unless `keep=True` asks for `cap.packets`. The socket side is
`nslab.kernel.packet`; this module is pure Python: the pcap format, header decoding, the reader thread.
"""

from __future__ import annotations

import ipaddress
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from . import threads
from .errors import NotFoundError, UsageError
from .kernel.packet import DEFAULT_SNAPLEN, PacketSocket, RawPacket, compile_filter

if TYPE_CHECKING:
    from .lab.view import LabView

__all__ = ["Capture", "Packet", "PcapWriter", "PcapngWriter", "capture", "decode", "link_points", "parse_target"]

PCAP_MAGIC_NS = 0xA1B23C4D  # nanosecond-resolution pcap (tshark, Wireshark, tcpdump read it)
LINKTYPE_ETHERNET = 1
QUEUE_MAX = 10000  # packets waiting for an iterating caller; beyond this they are dropped (and counted)
QUEUE_MAX_BYTES = 32 << 20  # and their bytes (a GSO frame on veth can be 64 KiB)


# ---- pcap and pcapng ------------------------------------------------------------------------------------
class PcapWriter:
    """The classic pcap format: a 24-byte file header, then a 16-byte header before each packet. One interface."""

    def __init__(self, out: IO[bytes], snaplen: int = DEFAULT_SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> None:
        self.out = out
        self.snaplen = snaplen
        out.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, linktype))

    def add_interface(self, name: str, description: str) -> int:
        """Classic pcap has no interface records: one interface only, number 0."""
        return 0

    def write(self, ts_ns: int, data: bytes, length: int, iface: int = 0, outgoing: bool | None = None) -> None:
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        data = data[: self.snaplen]
        self.out.write(struct.pack("<IIII", sec, nsec, len(data), length))
        self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _pcapng_option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _pcapng_block(kind: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


class PcapngWriter:
    """pcapng (the IETF draft Wireshark writes): a section header, one Interface Description Block per interface
    (its name and a description, nanosecond timestamps), then Enhanced Packet Blocks naming their interface and
    direction. What several interfaces captured at once need: tshark shows `frame.interface_name` per packet."""

    SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006

    def __init__(self, out: IO[bytes], snaplen: int = DEFAULT_SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> None:
        self.out = out
        self.snaplen = snaplen
        self.linktype = linktype
        self.interfaces = 0
        options = _pcapng_option(4, b"nslab") + _pcapng_option(0, b"")  # shb_userappl, opt_endofopt
        out.write(_pcapng_block(self.SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options))

    def add_interface(self, name: str, description: str) -> int:
        """An IDB; returns the interface number packets refer to. All IDBs come before the first packet."""
        options = (_pcapng_option(2, name.encode()) + _pcapng_option(3, description.encode())
                   + _pcapng_option(9, bytes([9])) + _pcapng_option(0, b""))  # if_name, if_description, if_tsresol
        self.out.write(_pcapng_block(self.IDB, struct.pack("<HHI", self.linktype, 0, self.snaplen) + options))
        self.interfaces += 1
        return self.interfaces - 1

    def write(self, ts_ns: int, data: bytes, length: int, iface: int = 0, outgoing: bool | None = None) -> None:
        data = data[: self.snaplen]
        body = struct.pack("<IIIII", iface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data), length)
        body += data + b"\0" * (-len(data) % 4)
        if outgoing is not None:  # epb_flags: bits 0-1 the direction, 1 inbound, 2 outbound
            body += _pcapng_option(2, struct.pack("<I", 2 if outgoing else 1)) + _pcapng_option(0, b"")
        self.out.write(_pcapng_block(self.EPB, body))

    def flush(self) -> None:
        self.out.flush()


# ---- decoding ------------------------------------------------------------------------------------------
_TCP_FLAGS = [(0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x20, "U"), (0x40, "E"), (0x80, "W")]
_ICMP = {0: "echo reply", 3: "destination unreachable", 5: "redirect", 8: "echo request", 11: "time exceeded"}
_ICMP6 = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 128: "echo request",
          129: "echo reply", 133: "router solicitation", 134: "router advertisement",
          135: "neighbor solicitation", 136: "neighbor advertisement", 143: "multicast listener report v2"}
_IP6_EXT = {0, 43, 60}  # hop-by-hop, routing, destination options (length in 8-byte units after the first 8)


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _tcp_flags(flags: int) -> str:
    out = "".join(ch for bit, ch in _TCP_FLAGS if flags & bit)
    if flags & 0x10:
        out += "."
    return out or "none"


def _l4(proto: int, src: str, dst: str, p: bytes) -> str:
    if proto == 6 and len(p) >= 20:
        sport, dport, _seq, _ack, off, flags = struct.unpack_from("!HHIIBB", p)
        hlen = (off >> 4) * 4
        return f"{src}.{sport} > {dst}.{dport}: TCP [{_tcp_flags(flags)}] len {max(0, len(p) - hlen)}"
    if proto == 17 and len(p) >= 8:
        sport, dport, ulen = struct.unpack_from("!HHH", p)
        return f"{src}.{sport} > {dst}.{dport}: UDP len {max(0, ulen - 8)}"
    if proto == 1 and len(p) >= 4:
        kind, code = p[0], p[1]
        what = _ICMP.get(kind, f"type {kind} code {code}")
        if kind in (0, 8) and len(p) >= 8:
            ident, seq = struct.unpack_from("!HH", p, 4)
            what += f" id {ident} seq {seq}"
        return f"{src} > {dst}: ICMP {what} len {len(p)}"
    if proto == 58 and len(p) >= 4:
        kind = p[0]
        what = _ICMP6.get(kind, f"type {kind} code {p[1]}")
        if kind in (128, 129) and len(p) >= 8:
            ident, seq = struct.unpack_from("!HH", p, 4)
            what += f" id {ident} seq {seq}"
        elif kind in (135, 136) and len(p) >= 24:
            what += f" {'who-has' if kind == 135 else 'tgt is'} {ipaddress.IPv6Address(p[8:24])}"
        return f"{src} > {dst}: ICMP6 {what} len {len(p)}"
    name = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMP6"}.get(proto, f"ip-proto-{proto}")
    return f"{src} > {dst}: {name} len {len(p)}"


def decode(data: bytes, length: int | None = None) -> str:
    """One line for an Ethernet frame (without the timestamp): ARP, IPv4, IPv6, ICMP(v6), TCP, UDP."""
    length = len(data) if length is None else length
    if len(data) < 14:
        return f"truncated frame len {length}"
    etype = struct.unpack_from("!H", data, 12)[0]
    p = data[14:]
    if etype == 0x0806 and len(p) >= 28:
        op = struct.unpack_from("!H", p, 6)[0]
        sha, spa, tpa = p[8:14], ipaddress.IPv4Address(p[14:18]), ipaddress.IPv4Address(p[24:28])
        if op == 1:
            return f"ARP who-has {tpa} tell {spa} len {length - 14}"
        if op == 2:
            return f"ARP reply {spa} is-at {_mac(sha)} len {length - 14}"
        return f"ARP op {op} len {length - 14}"
    if etype == 0x0800 and len(p) >= 20:
        ihl = (p[0] & 0x0F) * 4
        total = struct.unpack_from("!H", p, 2)[0]
        frag = struct.unpack_from("!H", p, 6)[0]
        src, dst = str(ipaddress.IPv4Address(p[12:16])), str(ipaddress.IPv4Address(p[16:20]))
        body = p[ihl:total] if total >= ihl else p[ihl:]
        if frag & 0x1FFF:
            return f"{src} > {dst}: IP fragment offset {(frag & 0x1FFF) * 8} len {len(body)}"
        return _l4(p[9], src, dst, body)
    if etype == 0x86DD and len(p) >= 40:
        plen = struct.unpack_from("!H", p, 4)[0]
        nxt = p[6]
        src, dst = str(ipaddress.IPv6Address(p[8:24])), str(ipaddress.IPv6Address(p[24:40]))
        body = p[40 : 40 + plen]
        while nxt in _IP6_EXT and len(body) >= 8:
            nxt, hlen = body[0], (body[1] + 1) * 8
            body = body[hlen:]
        if nxt == 44:
            return f"{src} > {dst}: IP6 fragment len {len(body)}"
        return _l4(nxt, src, dst, body)
    return f"{_mac(data[6:12])} > {_mac(data[0:6])}: ethertype 0x{etype:04x} len {length}"


@dataclass(frozen=True, slots=True)
class Packet:
    """A captured frame: kernel timestamp (ns since the epoch), bytes (up to snaplen), length on the wire."""

    ts_ns: int
    data: bytes
    length: int
    outgoing: bool
    node: str
    iface: str

    @property
    def time(self) -> float:
        return self.ts_ns / 1e9

    def summary(self) -> str:
        return decode(self.data, self.length)

    def line(self) -> str:
        """`12:00:01.123456 10.0.0.1.40000 > 10.0.0.2.80: TCP [S] len 0` (local time, as tcpdump)."""
        sec, nsec = divmod(self.ts_ns, 1_000_000_000)
        return f"{time.strftime('%H:%M:%S', time.localtime(sec))}.{nsec // 1000:06d} {self.summary()}"


# ---- where to capture ----------------------------------------------------------------------------------
def parse_target(text: str) -> tuple[str, str | None]:
    """`NODE` or `NODE:IFACE`."""
    node, sep, iface = text.partition(":")
    if not node or (sep and not iface):
        raise UsageError(f"bad capture point {text!r}", "write NODE or NODE:IFACE, e.g. 'h1' or 's1:eth0'")
    return node, iface or None


def resolve_iface(lab: LabView, node: str, iface: str | None) -> str:
    """The interface to capture on: IFACE if the node has it in the plan (or its bridge, or lo), else its first."""
    plan = lab.plan
    np = plan.node(node)
    names = [i.ifname for i in plan.interfaces_of(node)]
    if iface is None:
        if not names:
            raise UsageError(f"node {node!r} of lab {lab.name!r} has no lab interface to capture on",
                             f"name one: '{node}:lo'")
        return names[0]
    known = [*names, *([np.bridge] if np.bridge else []), "lo"]
    if iface not in known:
        raise NotFoundError(f"node {node!r} of lab {lab.name!r} has no interface {iface!r}",
                            f"its interfaces: {', '.join(known)} (write {node}:IFACE)")
    return iface


# ---- the capture ---------------------------------------------------------------------------------------
@dataclass
class _Point:
    """One interface of a capture: its node, namespace, socket and reader thread, its number in the file."""

    node: str
    iface: str
    netns: str
    sock: PacketSocket | None = None
    thread: threading.Thread | None = None
    number: int = 0
    count: int = 0

    @property
    def name(self) -> str:
        return f"{self.node}:{self.iface}"


class Capture:
    """A running capture on one interface or several; a context manager. Reads on a thread per interface until
    count (all interfaces together), stop() or exit. Several interfaces go to one pcapng file, one IDB each."""

    def __init__(self, lab: LabView, node: str, iface: str | None = None, count: int | None = None,
                 filter: str | None = None, write: str | IO[bytes] | None = None, keep: bool = False,
                 snaplen: int = DEFAULT_SNAPLEN, on_packet: Callable[[Packet], None] | None = None,
                 more: Sequence[tuple[str, str | None]] = (), pcapng: bool | None = None) -> None:
        if count is not None and count < 1:
            raise UsageError(f"bad packet count {count}", "--count must be a positive number")
        self.lab = lab
        self.points: list[_Point] = []
        for n, i in [(node, iface), *more]:
            point = _Point(n, resolve_iface(lab, n, i), lab.plan.node(n).netns)
            if any(p.name == point.name for p in self.points):
                raise UsageError(f"capture point {point.name} is given twice", "name each interface once")
            self.points.append(point)
        self.node, self.iface, self.netns = self.points[0].node, self.points[0].iface, self.points[0].netns
        self.limit = count
        self.filter = filter
        self.bpf = compile_filter(filter, snaplen) if filter else None
        self.write_to = write
        # pcapng when asked, when several interfaces share the file, or when the file's name says so
        self.pcapng = pcapng if pcapng is not None else (
            len(self.points) > 1 or (isinstance(write, str) and write.lower().endswith(".pcapng")))
        if len(self.points) > 1 and pcapng is False:
            raise UsageError("classic pcap holds one interface only",
                             "write several interfaces as pcapng (a .pcapng file, or drop the pcap choice)")
        self.flush_each = False  # flush after every packet (a pipe: the reader sees packets as they come)
        self.keep = keep
        self.snaplen = snaplen
        self.on_packet = on_packet
        self.packets: list[Packet] = []  # only with keep=True
        self.count = 0
        self.queue_drops = 0
        self.error: BaseException | None = None
        self._file: IO[bytes] | None = None
        self._own_file = False
        self._writer: PcapWriter | PcapngWriter | None = None
        self._stop = threading.Event()
        self._stop_lock = threading.Lock()
        self._handle_lock = threading.Lock()  # readers of several interfaces share the count, file and queue
        self._done = threading.Event()
        self._running = 0
        self._queue: queue.Queue[Packet | None] | None = None
        self._iterated = False
        self._queued_bytes = 0
        self._queue_lock = threading.Lock()
        self._started = False
        self.started = 0.0
        self.elapsed = 0.0

    @property
    def _sock(self) -> PacketSocket | None:
        return self.points[0].sock

    # ---- life cycle
    def start(self) -> Capture:
        if self._started:
            return self
        # A capture that neither writes a file nor calls back is there to be iterated: queue from the
        # start, so the loop also gets the packets that arrived before it began (bounded, like the rest).
        if self._queue is None and self.write_to is None and self.on_packet is None:
            self._queue = queue.Queue(QUEUE_MAX)
        try:
            for p in self.points:
                p.sock = PacketSocket(p.netns, p.iface, self.bpf, self.snaplen)
            if self.write_to is not None:
                if isinstance(self.write_to, str):
                    self._file = open(self.write_to, "wb")  # noqa: SIM115 (closed in stop)
                    self._own_file = True
                else:
                    self._file = self.write_to
                writer = PcapngWriter(self._file, self.snaplen) if self.pcapng else PcapWriter(self._file, self.snaplen)
                for p in self.points:
                    p.number = writer.add_interface(
                        p.name, f"{p.iface} of node {p.node} in lab {self.lab.name} (netns {p.netns})")
                writer.flush()
                self._writer = writer
        except OSError as exc:
            self._close_sockets()
            if self._own_file and self._file is not None:
                self._file.close()
            if isinstance(exc, BrokenPipeError) or not isinstance(self.write_to, str):
                raise
            raise UsageError(f"cannot write capture file {self.write_to!r}: {exc.strerror}",
                             "give a writable path to -w") from None
        except BaseException:
            self._close_sockets()
            raise
        self._started = True
        self.started = time.monotonic()
        self._running = len(self.points)
        for p in self.points:
            p.thread = threads.Thread(target=self._loop, args=(p,), name=f"nslab-capture-{p.node}-{p.iface}",
                                      daemon=True)
            p.thread.start()
        return self

    def _close_sockets(self) -> None:
        for p in self.points:
            if p.sock is not None and not p.sock.closed:
                p.sock.close()

    def _loop(self, point: _Point) -> None:
        sock = point.sock
        assert sock is not None
        try:
            while not self._stop.is_set():
                raw = sock.recv(0.5)
                if raw is None:
                    continue
                with self._handle_lock:
                    if self.limit is not None and self.count >= self.limit:
                        break
                    self._handle(raw, point)
                    if self.limit is not None and self.count >= self.limit:
                        self._stop.set()
                        for p in self.points:  # the other readers end now too
                            if p is not point and p.sock is not None:
                                p.sock.wake()
                        break
        except BaseException as exc:  # reported by wait()/stop(); never lost on the thread
            self.error = self.error or exc
            self._stop.set()
            for p in self.points:
                if p is not point and p.sock is not None:
                    p.sock.wake()
        finally:
            with self._handle_lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self._finish()

    def _finish(self) -> None:
        self.elapsed = time.monotonic() - self.started
        if self._writer is not None:
            try:
                self._writer.flush()
            except OSError as exc:
                self.error = self.error or exc
        self._done.set()
        q = self._queue
        if q is not None:
            try:
                q.put_nowait(None)
            except queue.Full:
                pass

    def _handle(self, raw: RawPacket, point: _Point) -> None:
        self.count += 1
        point.count += 1
        if self._writer is not None:
            self._writer.write(raw.ts_ns, raw.data, raw.length, point.number, raw.outgoing)
            if self.flush_each:
                self._writer.flush()
        if not (self.keep or self.on_packet or self._queue is not None):
            return
        pkt = Packet(raw.ts_ns, raw.data, raw.length, raw.outgoing, point.node, point.iface)
        if self.keep:
            self.packets.append(pkt)
        if self.on_packet is not None:
            self.on_packet(pkt)
        q = self._queue
        if q is not None:
            with self._queue_lock:
                if self._queued_bytes + len(pkt.data) > QUEUE_MAX_BYTES or q.full():
                    self.queue_drops += 1
                    return
                self._queued_bytes += len(pkt.data)
            q.put_nowait(pkt)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the count is reached or the capture stopped; True if it ended. Ctrl-C raises here."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            self._done.wait(left)
        return True

    def stop(self) -> None:
        """Stop reading, flush and close the file and the sockets; idempotent, leaves no thread behind.

        Safe from any thread (a timer, a signal handler's thread), also while another thread iterates.
        """
        self._stop.set()
        with self._stop_lock:
            for p in self.points:
                if p.sock is not None and not p.sock.closed:
                    p.sock.wake()
            for p in self.points:
                if p.thread is not None:
                    p.thread.join()
            self._close_sockets()
            if self._file is not None:
                try:
                    self._file.flush()
                except BrokenPipeError as exc:  # the reader of a pipe went away: what it did not read is lost
                    self.error = self.error or exc
                finally:
                    if self._own_file:
                        self._file.close()
                    self._file = None

    @property
    def drops(self) -> int:
        """Packets the kernel dropped because the bounded buffers were full (known once stopped)."""
        total = 0
        for p in self.points:
            if p.sock is None:
                continue
            if not p.sock.closed:
                p.sock.stats()
            total += p.sock.drops
        return total

    @property
    def counts(self) -> dict[str, int]:
        """Packets captured per interface, `NODE:IFACE` -> count."""
        return {p.name: p.count for p in self.points}

    @property
    def running(self) -> bool:
        return self._started and not self._done.is_set()

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[Packet]:
        """Packets captured since start (or, if not started, from now on), until count or stop().

        They pass through a queue bounded in packets and bytes: a consumer slower than the traffic loses
        packets (counted in `queue_drops`) rather than growing memory; the pcap file still gets every one.
        """
        self._iterated = True
        if self._queue is None:
            self._queue = queue.Queue(QUEUE_MAX)
        self.start()
        q = self._queue
        while True:
            try:
                pkt = q.get(timeout=0.2)
            except queue.Empty:
                if self._done.is_set() and q.empty():
                    break
                continue
            if pkt is None:
                break
            with self._queue_lock:
                self._queued_bytes -= len(pkt.data)
            yield pkt
        if self.error is not None:
            raise self.error

    def summary(self) -> str:
        where = ", ".join(p.name for p in self.points)
        extra = f", {self.queue_drops} not shown (reader too slow)" if self.queue_drops and self._iterated else ""
        per = f" ({', '.join(f'{k} {v}' for k, v in self.counts.items())})" if len(self.points) > 1 else ""
        return (f"{self.count} packets captured on {where} in {self.elapsed:.2f} s{per}, "
                f"{self.drops} dropped by kernel{extra}")


def capture(lab: LabView, node: str, iface: str | None = None, count: int | None = None, filter: str | None = None,
            write: str | IO[bytes] | None = None, keep: bool = False, snaplen: int = DEFAULT_SNAPLEN,
            on_packet: Callable[[Packet], None] | None = None, *, more: Sequence[str] = (),
            pcapng: bool | None = None) -> Capture:
    """A capture on NODE's IFACE (default: its first lab interface; `node` may be `NODE:IFACE`), and on every
    `NODE[:IFACE]` of `more` too (one pcapng file for them all).

    Use it as a context manager (reads on threads until exit, count or stop()) or iterate over it.
    """
    if iface is None and ":" in node:
        node, iface = parse_target(node)
    return Capture(lab, node, iface, count, filter, write, keep, snaplen, on_packet,
                   [parse_target(m) for m in more], pcapng)


def link_points(lab: LabView, a: str, b: str, iface: str | None = None) -> list[str]:
    """Both ends of the link A-B as capture points, `A:IFACE` and `B:IFACE` (IFACE picks among several links)."""
    from .faults import find_link

    ea, eb = find_link(lab.plan, a, b, iface)
    return [f"{ea.node}:{ea.ifname}", f"{eb.node}:{eb.ifname}"]
