"""Built-in throughput between two lab nodes, A -> B, TCP or UDP (Mininet's `iperf`, without iperf).

The server socket is opened in B's namespace and the client socket in A's (`run_in_netns`); both are then
driven by threads of this process, so no program runs in either node and nothing is left behind.

TCP: the client `sendall`s 128 KiB chunks as fast as it can; the server counts the bytes it receives. The rate
is measured over `seconds` after a short warm-up (slow start, buffer fill), which is excluded.

UDP: the client paces datagrams to `rate` bits/s (in 1 ms bursts); each datagram carries a sequence number and
its send time. The server takes the kernel's receive timestamp (SO_TIMESTAMPNS) and computes loss, reordering
and the interarrival jitter of RFC 3550 §6.4.1: D = (Rj - Ri) - (Sj - Si), J += (|D| - J) / 16.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import threads, units
from .errors import NslabError, UsageError
from .kernel.netns import run_in_netns
from .units import PACING_RATES

if TYPE_CHECKING:
    from .lab.view import LabView

__all__ = ["PerfResult", "parse_rate", "parse_seconds", "perf"]

CHUNK = 128 * 1024
SOCK_BUF = 4 << 20
WARMUP = 0.3  # seconds excluded from a TCP measurement
UDP_PAYLOAD = 1470  # bytes per datagram (fits a 1500-byte MTU with IPv4 and UDP headers)
UDP_HEADER = struct.Struct("!QQ")  # sequence number, send time (CLOCK_REALTIME ns)
DEFAULT_RATE = 1_000_000_000
SO_TIMESTAMPNS = 35


@dataclass
class PerfResult:
    protocol: str  # "tcp" | "udp"
    client: str  # node A (sends)
    server: str  # node B (receives)
    address: str  # B's address the client sent to
    bits_per_second: float  # received by B
    bytes: int  # received by B during the measured interval
    seconds: float  # length of the measured interval
    loss_percent: float | None = None  # UDP
    jitter_ms: float | None = None  # UDP, RFC 3550
    packets_sent: int | None = None  # UDP
    packets_received: int | None = None  # UDP
    out_of_order: int | None = None  # UDP
    target_bits_per_second: float | None = None  # UDP: the paced rate asked for
    sent_bits_per_second: float | None = None  # UDP: what the sender achieved

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        line = (f"{self.client} -> {self.server} ({self.address}) {self.protocol.upper()}: "
                f"{human_rate(self.bits_per_second)} ({self.bytes} bytes in {self.seconds:.2f} s)")
        if self.protocol == "udp":
            line += (f", loss {self.loss_percent:.2f} % ({self.packets_received}/{self.packets_sent} datagrams), "
                     f"jitter {self.jitter_ms:.3f} ms, {self.out_of_order} out of order, "
                     f"sent {human_rate(self.sent_bits_per_second or 0.0)} "
                     f"of {human_rate(self.target_bits_per_second or 0.0)} asked")
        return line


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


# ---- sockets in namespaces ---------------------------------------------------------------------------
def _socket_in(netns: str, kind: int, server: bool) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF if server else socket.SO_SNDBUF, SOCK_BUF)
            if server:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", 0))
                if kind == socket.SOCK_STREAM:
                    s.listen(1)
                else:
                    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except BaseException:
            s.close()
            raise
        return s

    return run_in_netns(netns, make)


class _Thread(threads.Thread):
    """A worker whose exception is kept for the caller."""

    def __init__(self, name: str, target: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:
            self.error = exc


def _join(threads: list[_Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def _sleep(seconds: float) -> None:
    """Sleep in short steps so Ctrl-C is seen promptly."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


# ---- TCP -----------------------------------------------------------------------------------------------
def _tcp(a_ns: str, b_ns: str, addr: str, seconds: float, warmup: float) -> tuple[int, float]:
    listener = _socket_in(b_ns, socket.SOCK_STREAM, server=True)
    client = _socket_in(a_ns, socket.SOCK_STREAM, server=False)
    port = listener.getsockname()[1]
    stop = threading.Event()
    received = [0]
    conns: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(5.0)
        conn, _ = listener.accept()
        conns.append(conn)
        conn.settimeout(5.0)
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = conn.recv_into(view)
            if n == 0:
                return
            received[0] += n

    def send() -> None:
        client.settimeout(5.0)
        client.connect((addr, port))
        chunk = memoryview(bytes(CHUNK))
        while not stop.is_set():
            client.sendall(chunk)
        client.shutdown(socket.SHUT_WR)

    server_t, client_t = _Thread("nslab-perf-server", serve), _Thread("nslab-perf-client", send)
    try:
        server_t.start()
        client_t.start()
        _sleep(warmup)
        t0, b0 = time.monotonic(), received[0]
        _sleep(seconds)
        t1, b1 = time.monotonic(), received[0]
        stop.set()
        _join([client_t, server_t], 10.0)
        for t in (client_t, server_t):
            if t.error is not None:
                raise NslabError(f"TCP measurement failed: {t.error}",
                                 f"check that {addr} is reachable from the client node (nslab lab reach)")
    finally:
        stop.set()
        for s in (client, listener, *conns):
            s.close()
        _join([client_t, server_t], 2.0)
    return b1 - b0, t1 - t0


# ---- UDP -----------------------------------------------------------------------------------------------
@dataclass
class _UdpStats:
    received: int = 0
    bytes: int = 0
    max_seq: int = -1
    out_of_order: int = 0
    jitter_ns: float = 0.0
    last_transit: int | None = None
    first_ns: int = 0
    last_ns: int = 0


def _udp(a_ns: str, b_ns: str, addr: str, seconds: float, rate: float) -> tuple[_UdpStats, int, float]:
    server = _socket_in(b_ns, socket.SOCK_DGRAM, server=True)
    client = _socket_in(a_ns, socket.SOCK_DGRAM, server=False)
    port = server.getsockname()[1]
    st = _UdpStats()
    sent = [0]
    send_time = [0.0]
    done = threading.Event()

    def receive() -> None:
        buf = bytearray(65536)
        view = memoryview(buf)
        server.settimeout(0.2)
        while True:
            try:
                n, anc, _flags, _addr = server.recvmsg_into([view], 64)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            if n < UDP_HEADER.size:
                continue
            seq, sent_ns = UDP_HEADER.unpack_from(buf)
            arrival = time.time_ns()
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack_from("qq", data)
                    arrival = sec * 1_000_000_000 + nsec
            if st.received == 0:
                st.first_ns = arrival
            st.last_ns = arrival
            st.received += 1
            st.bytes += n
            if seq < st.max_seq:
                st.out_of_order += 1
            else:
                st.max_seq = seq
            transit = arrival - sent_ns
            if st.last_transit is not None:
                d = abs(transit - st.last_transit)
                st.jitter_ns += (d - st.jitter_ns) / 16.0
            st.last_transit = transit

    def send() -> None:
        client.connect((addr, port))
        payload = bytearray(UDP_PAYLOAD)
        per_ns = rate / 8 / 1e9  # bytes allowed per nanosecond
        start = time.monotonic_ns()
        end = start + int(seconds * 1e9)
        seq = 0
        nbytes = 0
        while True:
            now = time.monotonic_ns()
            if now >= end:
                break
            owed = int((now - start) * per_ns) - nbytes
            if owed < UDP_PAYLOAD:
                time.sleep(0.001)
                continue
            for _ in range(owed // UDP_PAYLOAD):
                UDP_HEADER.pack_into(payload, 0, seq, time.time_ns())
                try:
                    client.send(payload)
                except (BlockingIOError, ConnectionRefusedError):
                    pass  # a full queue or a transient ICMP error: the datagram counts as sent and lost
                seq += 1
                nbytes += UDP_PAYLOAD
        sent[0] = seq
        send_time[0] = (time.monotonic_ns() - start) / 1e9

    recv_t, send_t = _Thread("nslab-perf-udp-server", receive), _Thread("nslab-perf-udp-client", send)
    try:
        recv_t.start()
        send_t.start()
        while send_t.is_alive():
            send_t.join(0.1)
        _sleep(0.3)  # datagrams still in queues
        done.set()
        _join([recv_t], 5.0)
        for t in (send_t, recv_t):
            if t.error is not None:
                raise NslabError(f"UDP measurement failed: {t.error}",
                                 f"check that {addr} is reachable from the client node (nslab lab reach)")
    finally:
        done.set()
        client.close()
        _join([recv_t], 2.0)
        server.close()
    return st, sent[0], send_time[0]


# ---- the API -------------------------------------------------------------------------------------------
def _endpoint(lab: LabView, node: str) -> str:
    np = lab.plan.node(node)
    if np.kind == "switch":
        raise UsageError(f"node {node!r} of lab {lab.name!r} is a switch, which has no address",
                         "measure between hosts or routers")
    return np.netns


def perf(lab: LabView, a: str, b: str, udp: bool = False, seconds: float = 3.0, rate: float | str | None = None,
         warmup: float = WARMUP) -> PerfResult:
    """Throughput from node A to node B (B's first IPv4 address) over `seconds`."""
    a_ns, b_ns = _endpoint(lab, a), _endpoint(lab, b)
    if a == b:
        raise UsageError(f"perf: client and server are the same node {a!r}", "name two different nodes")
    seconds = parse_seconds(seconds)
    addr = lab.plan.primary_ipv4(b)
    if addr is None:
        raise UsageError(f"node {b!r} of lab {lab.name!r} has no IPv4 address", "measure to a node with one")
    if not udp:
        if rate is not None:
            raise UsageError("perf: --rate applies to UDP only", "add --udp, or drop --rate (TCP sends at full speed)")
        nbytes, elapsed = _tcp(a_ns, b_ns, addr, seconds, warmup)
        return PerfResult("tcp", a, b, addr, nbytes * 8 / elapsed if elapsed > 0 else 0.0, nbytes, elapsed)
    target = parse_rate(rate if rate is not None else DEFAULT_RATE)
    st, sent, send_time = _udp(a_ns, b_ns, addr, seconds, target)
    loss = 100.0 * max(0, sent - st.received) / sent if sent else 100.0
    return PerfResult(
        "udp", a, b, addr,
        bits_per_second=st.bytes * 8 / send_time if send_time > 0 else 0.0,
        bytes=st.bytes, seconds=send_time, loss_percent=loss, jitter_ms=st.jitter_ns / 1e6,
        packets_sent=sent, packets_received=st.received, out_of_order=st.out_of_order,
        target_bits_per_second=target,
        sent_bits_per_second=sent * UDP_PAYLOAD * 8 / send_time if send_time > 0 else 0.0,
    )
