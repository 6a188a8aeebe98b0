"""Built-in throughput between two lab nodes, TCP or UDP (Mininet's `iperf`, iperf3's habits, without iperf).

The server sockets are opened in B's namespace and the client sockets in A's (`run_in_netns`); all are then
driven by threads of this process, so no program runs in either node and nothing is left behind. A connects
to B (B's first IPv4 address); data flows A -> B, or B -> A with `reverse` (iperf3's -R: the connection is
still made from A). `streams` runs that many connections (iperf3's -P) and sums them.

TCP: each sender `sendall`s 128 KiB chunks as fast as it can; each receiver counts the bytes it reads. The
rate is measured over `seconds` after a short warm-up (slow start, buffer fill), which is excluded; the
warm-up starts once every connection is established (a SYN lost on a lossy link is not measured).

UDP: each sender paces datagrams to `rate` bits/s (per stream, as iperf3's -b; in 1 ms bursts); a datagram
carries a sequence number and its send time. The receiver takes the kernel's receive timestamp
(SO_TIMESTAMPNS) and computes loss, reordering and the interarrival jitter of RFC 3550 §6.4.1:
D = (Rj - Ri) - (Sj - Si), J += (|D| - J) / 16.

The clock is this process's: the main thread samples the receivers' counters at every `interval` and at the
end, then stops the streams at once. The end never waits for the network: sockets are shut down (which wakes
a sender blocked on a full buffer and a receiver waiting for data) and closed with a reset (SO_LINGER 0), so
data still queued on a slow or lossy link is dropped instead of drained, and a 1 s test takes about 1 s.
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import threads, units
from .errors import NslabError, UsageError
from .kernel.netns import run_in_netns
from .units import PACING_RATES

if TYPE_CHECKING:
    from .lab.view import LabView

__all__ = ["PerfInterval", "PerfResult", "parse_interval", "parse_rate", "parse_seconds", "parse_streams", "perf"]

CHUNK = 128 * 1024
SOCK_BUF = 4 << 20
WARMUP = 0.3  # seconds excluded from a TCP measurement
UDP_PAYLOAD = 1470  # bytes per datagram (fits a 1500-byte MTU with IPv4 and UDP headers)
UDP_HEADER = struct.Struct("!QQ")  # sequence number, send time (CLOCK_REALTIME ns)
UDP_HELLO = b"nslab-perf-hello"  # A -> B in reverse UDP: tells B where to send (datagrams shorter than a header)
UDP_LINGER = 0.3  # seconds the UDP receivers keep reading after the senders stopped (datagrams in queues)
DEFAULT_RATE = 1_000_000_000
SO_TIMESTAMPNS = 35
CONNECT_TIMEOUT = 10.0  # seconds to set up the streams (SYN retransmits at 1, 3 and 7 s on a lossy link)
MAX_STREAMS = 128  # iperf3's limit


@dataclass
class PerfInterval:
    """One reporting interval (iperf3's `intervals[].sum`), seconds from the start of the measurement."""

    start: float
    end: float
    seconds: float
    bytes: int  # received in the interval, all streams
    bits_per_second: float
    packets: int | None = None  # UDP: datagrams received
    lost: int | None = None  # UDP: sequence numbers skipped over in the interval
    loss_percent: float | None = None  # UDP
    jitter_ms: float | None = None  # UDP: the RFC 3550 estimate at the interval's end (mean of the streams)

    def line(self) -> str:
        span = f"{self.start:.2f}-{self.end:.2f} s"
        text = f"{span:>15}  {human_rate(self.bits_per_second):>14}  {self.bytes:>11} bytes"
        if self.packets is not None:
            text += (f"  loss {self.loss_percent or 0.0:.2f} % ({self.lost}/{(self.lost or 0) + self.packets})"
                     f"  jitter {self.jitter_ms or 0.0:.3f} ms")
        return text


@dataclass
class PerfResult:
    protocol: str  # "tcp" | "udp"
    client: str  # node A (connects; sends unless reverse)
    server: str  # node B (listens; receives unless reverse)
    address: str  # B's address the client connected to
    bits_per_second: float  # received, all streams
    bytes: int  # received during the measured interval, all streams
    seconds: float  # length of the measured interval
    loss_percent: float | None = None  # UDP
    jitter_ms: float | None = None  # UDP, RFC 3550 (mean of the streams)
    packets_sent: int | None = None  # UDP
    packets_received: int | None = None  # UDP
    out_of_order: int | None = None  # UDP
    target_bits_per_second: float | None = None  # UDP: the paced rate asked for, per stream
    sent_bits_per_second: float | None = None  # UDP: what the senders achieved, all streams
    reverse: bool = False  # data went B -> A
    streams: int = 1
    interval: float | None = None  # seconds per interval; None: no intervals asked for
    intervals: list[PerfInterval] = field(default_factory=list)

    @property
    def sender(self) -> str:
        return self.server if self.reverse else self.client

    @property
    def receiver(self) -> str:
        return self.client if self.reverse else self.server

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        how = f", {self.streams} streams" if self.streams > 1 else ""
        where = f"{self.address}, reverse" if self.reverse else self.address
        line = (f"{self.sender} -> {self.receiver} ({where}) {self.protocol.upper()}{how}: "
                f"{human_rate(self.bits_per_second)} ({self.bytes} bytes in {self.seconds:.2f} s)")
        if self.protocol == "udp":
            line += (f", loss {self.loss_percent:.2f} % ({self.packets_received}/{self.packets_sent} datagrams), "
                     f"jitter {self.jitter_ms:.3f} ms, {self.out_of_order} out of order, "
                     f"sent {human_rate(self.sent_bits_per_second or 0.0)} "
                     f"of {human_rate((self.target_bits_per_second or 0.0) * self.streams)} asked")
        return line

    def report(self) -> str:
        """The interval lines (if any) and the summary line, as `nslab lab perf` prints them."""
        return "".join(f"{i.line()}\n" for i in self.intervals) + self.summary() + "\n"


def human_rate(bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.2f} {unit}"
    return f"{bps:.0f} bit/s"


def parse_rate(text: str | float | int) -> float:
    """A UDP target rate, `100M`, `1G`, `1.5g`, `500k`, `200mbit`, `2000000` -> bits per second (nslab.units)."""
    return float(units.parse_rate(text, PACING_RATES))


def parse_seconds(text: str | float | int) -> float:
    """The measurement time: a plain number of seconds from 0.1 to 3600 (nslab.units)."""
    return units.parse_seconds(text, "time", 0.1, 3600)


def parse_interval(text: str | float | int) -> float:
    """The reporting interval: seconds from 0.1 to 60 (iperf3's -i range)."""
    return units.parse_seconds(text, "interval", 0.1, 60)


def parse_streams(text: str | int) -> int:
    """The number of parallel streams, 1 to 128 (iperf3's -P)."""
    s = str(text).strip()
    if isinstance(text, bool) or not (s.isascii() and s.isdigit()) or not 1 <= int(s) <= MAX_STREAMS:
        raise UsageError(f"invalid number of streams {text!r}", f"give a whole number from 1 to {MAX_STREAMS}")
    return int(s)


# ---- sockets in namespaces ---------------------------------------------------------------------------
def _sockets_in(netns: str, kind: int, n: int, listen: bool) -> list[socket.socket]:
    """N sockets made in NETNS: listening on one TCP port (one listener), or bound UDP ones, or plain clients."""

    def make_one() -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUF)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUF)
            if kind == socket.SOCK_DGRAM:
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if listen:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", 0))
                if kind == socket.SOCK_STREAM:
                    s.listen(MAX_STREAMS)  # every stream connects at once
        except BaseException:
            s.close()
            raise
        return s

    def make() -> list[socket.socket]:
        out: list[socket.socket] = []
        try:
            for _ in range(n):
                out.append(make_one())
        except BaseException:
            for s in out:
                s.close()
            raise
        return out

    return run_in_netns(netns, make)


class _Thread(threads.Thread):
    """A worker whose exception is kept for the caller; one raised after the stop is the stop's own doing."""

    def __init__(self, name: str, target: Any, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.fn = target
        self.stop = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fn()
        except OSError as exc:
            if not self.stop.is_set():
                self.error = exc
        except BaseException as exc:
            self.error = exc


def _join(workers: list[_Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()))


def _sleep_until(deadline: float) -> None:
    """Sleep in short steps so Ctrl-C is seen promptly."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


def _check(workers: list[_Thread], what: str, addr: str) -> None:
    for t in workers:
        if t.error is not None:
            raise NslabError(f"{what} measurement failed: {t.error}",
                             f"check that {addr} is reachable from the client node (nslab lab reach)")


def _abort(sockets: list[socket.socket]) -> None:
    """Wake every thread blocked on these sockets and drop what is queued (a reset, not a drain)."""
    for s in sockets:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected (any more)


@dataclass
class _Clock:
    """When the measurement runs and how it is cut in intervals."""

    seconds: float
    interval: float | None

    def boundaries(self) -> list[float]:
        """Interval ends, seconds from the start; the last is `seconds`. A remainder shorter than a tenth of an
        interval joins the interval before it (so -t 2 -i 0.5 has 4 intervals, as iperf3 counts them)."""
        if self.interval is None:
            return [self.seconds]
        ends: list[float] = []
        k = 1
        while k * self.interval < self.seconds - self.interval * 0.1 + 1e-9:
            ends.append(k * self.interval)
            k += 1
        return [*ends, self.seconds]


# ---- TCP -----------------------------------------------------------------------------------------------
def _connect_all(listener: socket.socket, clients: list[socket.socket], addr: str) -> list[socket.socket]:
    """Connect every client to the listener at once (a SYN lost on a lossy link costs one retransmit, not
    one per stream in turn) and accept them all; TimeoutError past CONNECT_TIMEOUT."""
    port = listener.getsockname()[1]
    deadline = time.monotonic() + CONNECT_TIMEOUT
    poller = select.poll()
    pending: dict[int, socket.socket] = {}
    for c in clients:
        c.setblocking(False)
        err = c.connect_ex((addr, port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        pending[c.fileno()] = c
        poller.register(c.fileno(), select.POLLOUT)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        for fd, _ev in poller.poll(min(left, 0.1) * 1000):
            c = pending.pop(fd)
            poller.unregister(fd)
            err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
    conns: list[socket.socket] = []
    try:
        while len(conns) < len(clients):  # each is in the backlog once its handshake's last ACK arrived
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            listener.settimeout(min(left, 0.1))
            try:
                conns.append(listener.accept()[0])
            except TimeoutError:
                continue
    except BaseException:
        for s in conns:
            s.close()
        raise
    for c in clients:
        c.setblocking(True)
    return conns


def _tcp(a_ns: str, b_ns: str, addr: str, clock: _Clock, warmup: float, n: int, reverse: bool,
         ) -> tuple[list[tuple[float, int]], float]:
    """Samples (time since start, bytes received so far) at the start and every boundary; the real length."""
    listener = _sockets_in(b_ns, socket.SOCK_STREAM, 1, listen=True)[0]
    clients: list[socket.socket] = []
    conns: list[socket.socket] = []
    stop = threading.Event()
    received = [0] * n
    workers: list[_Thread] = []
    try:
        clients = _sockets_in(a_ns, socket.SOCK_STREAM, n, listen=False)
        try:
            conns = _connect_all(listener, clients, addr)
        except (TimeoutError, OSError) as exc:
            why = f"no connection within {CONNECT_TIMEOUT:.0f} s" if isinstance(exc, TimeoutError) else exc
            raise NslabError(f"TCP measurement failed: {why}",
                             f"check that {addr} is reachable from the client node (nslab lab reach)") from None
        senders, receivers = (conns, clients) if reverse else (clients, conns)

        def send(s: socket.socket) -> None:
            s.settimeout(None)
            chunk = memoryview(bytes(CHUNK))
            while not stop.is_set():
                s.sendall(chunk)

        def receive(s: socket.socket, i: int) -> None:
            s.settimeout(None)
            view = memoryview(bytearray(1 << 20))
            while (got := s.recv_into(view)) > 0:
                received[i] += got

        # named by the side whose socket they drive (B's server side, A's client side), whichever sends
        recv_side, send_side = ("client", "server") if reverse else ("server", "client")
        for i in range(n):
            workers.append(_Thread(f"nslab-perf-{recv_side}", lambda s=receivers[i], i=i: receive(s, i), stop))
            workers.append(_Thread(f"nslab-perf-{send_side}", lambda s=senders[i]: send(s), stop))
        for t in workers:
            t.start()
        _sleep_until(time.monotonic() + warmup)
        t0 = time.monotonic()
        samples = [(0.0, sum(received))]
        for end in clock.boundaries():
            _sleep_until(t0 + end)
            samples.append((time.monotonic() - t0, sum(received)))
            _check(workers, "TCP", addr)
        return samples, samples[-1][0]
    finally:
        stop.set()
        _abort([*clients, *conns])
        _join(workers, 2.0)
        for s in (*clients, *conns, listener):
            s.close()


# ---- UDP -----------------------------------------------------------------------------------------------
@dataclass
class _UdpStats:
    received: int = 0
    bytes: int = 0
    max_seq: int = -1
    out_of_order: int = 0
    jitter_ns: float = 0.0
    last_transit: int | None = None


@dataclass
class _UdpSample:
    at: float  # seconds since the start
    bytes: int
    received: int
    expected: int  # sequence numbers seen up to the highest (max_seq + 1), all streams
    jitter_ns: float  # mean of the streams


def _udp_receive(s: socket.socket, st: _UdpStats, done: threading.Event) -> None:
    view = memoryview(bytearray(65536))
    s.settimeout(0.1)
    while True:
        try:
            n, anc, _flags, _addr = s.recvmsg_into([view], 64)
        except TimeoutError:
            if done.is_set():
                return
            continue
        if n < UDP_HEADER.size:
            continue
        seq, sent_ns = UDP_HEADER.unpack_from(view)
        arrival = time.time_ns()
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack_from("qq", data)
                arrival = sec * 1_000_000_000 + nsec
        st.received += 1
        st.bytes += n
        if seq < st.max_seq:
            st.out_of_order += 1
        else:
            st.max_seq = seq
        transit = arrival - sent_ns
        if st.last_transit is not None:
            st.jitter_ns += (abs(transit - st.last_transit) - st.jitter_ns) / 16.0
        st.last_transit = transit


def _udp_send(s: socket.socket, rate: float, stop: threading.Event, out: list[float]) -> None:
    """Paced datagrams until stop; out gets [datagrams sent, seconds sent for]."""
    s.settimeout(None)  # blocking: a full send buffer waits (B's hello loop left a timeout on its socket)
    payload = bytearray(UDP_PAYLOAD)
    per_ns = rate / 8 / 1e9  # bytes allowed per nanosecond
    start = time.monotonic_ns()
    seq = 0
    nbytes = 0
    try:
        while not stop.is_set():
            owed = int((time.monotonic_ns() - start) * per_ns) - nbytes
            if owed < UDP_PAYLOAD:
                time.sleep(0.001)
                continue
            for _ in range(owed // UDP_PAYLOAD):
                UDP_HEADER.pack_into(payload, 0, seq, time.time_ns())
                try:
                    s.send(payload)
                except (BlockingIOError, ConnectionRefusedError):
                    pass  # a full queue or a transient ICMP error: the datagram counts as sent and lost
                seq += 1
                nbytes += UDP_PAYLOAD
    finally:
        out[:] = [seq, (time.monotonic_ns() - start) / 1e9]


def _udp_pair(server: socket.socket, client: socket.socket, addr: str, reverse: bool) -> None:
    """Connect the pair: A to B; in reverse B learns A's address from hellos A repeats until one arrives."""
    port = server.getsockname()[1]
    client.connect((addr, port))
    if not reverse:
        return
    server.settimeout(0.1)
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while time.monotonic() < deadline:
        client.send(UDP_HELLO)
        try:
            data, peer = server.recvfrom(64)
        except TimeoutError:
            continue
        if data == UDP_HELLO:
            server.connect(peer)
            return
    raise NslabError(f"UDP measurement failed: no datagram from the client within {CONNECT_TIMEOUT:.0f} s",
                     f"check that {addr} is reachable from the client node (nslab lab reach)")


def _udp(a_ns: str, b_ns: str, addr: str, clock: _Clock, rate: float, n: int, reverse: bool,
         ) -> tuple[list[_UdpSample], list[_UdpStats], int, float]:
    servers = _sockets_in(b_ns, socket.SOCK_DGRAM, n, listen=True)
    clients: list[socket.socket] = []
    stats = [_UdpStats() for _ in range(n)]
    sent = [[0.0, 0.0] for _ in range(n)]
    stop, done = threading.Event(), threading.Event()
    receivers: list[_Thread] = []
    senders: list[_Thread] = []

    def sample(at: float) -> _UdpSample:
        return _UdpSample(at, sum(s.bytes for s in stats), sum(s.received for s in stats),
                          sum(s.max_seq + 1 for s in stats), sum(s.jitter_ns for s in stats) / n)

    try:
        clients = _sockets_in(a_ns, socket.SOCK_DGRAM, n, listen=False)
        for srv, cli in zip(servers, clients, strict=True):
            _udp_pair(srv, cli, addr, reverse)
        tx, rx = (servers, clients) if reverse else (clients, servers)
        recv_side, send_side = ("client", "server") if reverse else ("server", "client")
        for i in range(n):
            receivers.append(_Thread(f"nslab-perf-udp-{recv_side}",
                                     lambda s=rx[i], st=stats[i]: _udp_receive(s, st, done), done))
            senders.append(_Thread(f"nslab-perf-udp-{send_side}",
                                   lambda s=tx[i], out=sent[i]: _udp_send(s, rate, stop, out), stop))
        for t in receivers:
            t.start()
        t0 = time.monotonic()
        for t in senders:
            t.start()
        samples = [sample(0.0)]
        for end in clock.boundaries():
            _sleep_until(t0 + end)
            if end == clock.seconds:
                stop.set()
                _join(senders, 5.0)
                _sleep_until(time.monotonic() + UDP_LINGER)  # datagrams still in queues
            # the last interval ends when the senders stopped, so the intervals add up to the result's seconds
            samples.append(sample(time.monotonic() - t0 if end != clock.seconds else max(s[1] for s in sent)))
            _check([*senders, *receivers], "UDP", addr)
        done.set()
        _join(receivers, 2.0)
        _check([*senders, *receivers], "UDP", addr)
        n_sent = int(sum(s[0] for s in sent))
        return samples, stats, n_sent, max(s[1] for s in sent)
    finally:
        stop.set()
        done.set()
        _join([*senders, *receivers], 2.0)
        for s in (*clients, *servers):
            s.close()


# ---- the API -------------------------------------------------------------------------------------------
def _endpoint(lab: LabView, node: str) -> str:
    np = lab.plan.node(node)
    if np.kind == "switch":
        raise UsageError(f"node {node!r} of lab {lab.name!r} is a switch, which has no address",
                         "measure between hosts or routers")
    return np.netns


def _tcp_intervals(samples: list[tuple[float, int]]) -> list[PerfInterval]:
    out = []
    for (t_a, b_a), (t_b, b_b) in itertools.pairwise(samples):
        dt = t_b - t_a
        out.append(PerfInterval(round(t_a, 6), round(t_b, 6), round(dt, 6), b_b - b_a,
                                (b_b - b_a) * 8 / dt if dt > 0 else 0.0))
    return out


def _udp_intervals(samples: list[_UdpSample]) -> list[PerfInterval]:
    out = []
    for a, b in itertools.pairwise(samples):
        dt = b.at - a.at
        got = b.received - a.received
        lost = max(0, (b.expected - a.expected) - got)
        out.append(PerfInterval(round(a.at, 6), round(b.at, 6), round(dt, 6), b.bytes - a.bytes,
                                (b.bytes - a.bytes) * 8 / dt if dt > 0 else 0.0, packets=got, lost=lost,
                                loss_percent=100.0 * lost / (lost + got) if lost + got else 0.0,
                                jitter_ms=b.jitter_ns / 1e6))
    return out


def perf(lab: LabView, a: str, b: str, udp: bool = False, seconds: float = 3.0, rate: float | str | None = None,
         warmup: float = WARMUP, *, interval: float | str | None = None, reverse: bool = False,
         streams: int | str = 1) -> PerfResult:
    """Throughput between node A (client) and node B (server, its first IPv4 address) over `seconds`:
    A -> B, or B -> A with `reverse`; `streams` parallel connections; intervals every `interval` seconds."""
    a_ns, b_ns = _endpoint(lab, a), _endpoint(lab, b)
    if a == b:
        raise UsageError(f"perf: client and server are the same node {a!r}", "name two different nodes")
    seconds = parse_seconds(seconds)
    every = None if interval is None else parse_interval(interval)
    n = parse_streams(streams)
    clock = _Clock(seconds, every)
    addr = lab.plan.primary_ipv4(b)
    if addr is None:
        raise UsageError(f"node {b!r} of lab {lab.name!r} has no IPv4 address", "measure to a node with one")
    if not udp:
        if rate is not None:
            raise UsageError("perf: --rate applies to UDP only", "add --udp, or drop --rate (TCP sends at full speed)")
        samples, elapsed = _tcp(a_ns, b_ns, addr, clock, warmup, n, reverse)
        nbytes = samples[-1][1] - samples[0][1]
        return PerfResult("tcp", a, b, addr, nbytes * 8 / elapsed if elapsed > 0 else 0.0, nbytes, elapsed,
                          reverse=reverse, streams=n, interval=every,
                          intervals=_tcp_intervals(samples) if every is not None else [])
    target = parse_rate(rate if rate is not None else DEFAULT_RATE)
    usamples, stats, sent, send_time = _udp(a_ns, b_ns, addr, clock, target, n, reverse)
    received = sum(s.received for s in stats)
    nbytes = sum(s.bytes for s in stats)
    loss = 100.0 * max(0, sent - received) / sent if sent else 100.0
    return PerfResult(
        "udp", a, b, addr,
        bits_per_second=nbytes * 8 / send_time if send_time > 0 else 0.0,
        bytes=nbytes, seconds=send_time, loss_percent=loss, jitter_ms=sum(s.jitter_ns for s in stats) / n / 1e6,
        packets_sent=sent, packets_received=received, out_of_order=sum(s.out_of_order for s in stats),
        target_bits_per_second=target,
        sent_bits_per_second=sent * UDP_PAYLOAD * 8 / send_time if send_time > 0 else 0.0,
        reverse=reverse, streams=n, interval=every, intervals=_udp_intervals(usamples) if every is not None else [],
    )
