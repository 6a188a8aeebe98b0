"""Packet capture at the kernel door: an AF_PACKET socket bound to one interface of one namespace.

The socket is created inside the node's namespace (`run_in_netns`) and then read from any thread: a packet
socket belongs to the namespace it was created in. It is created with protocol 0, so it queues nothing until
it is bound; the classic BPF filter is attached before the bind, so no unfiltered packet ever reaches it.
Timestamps come from the kernel (SO_TIMESTAMPNS, taken when the packet was queued), original lengths from
MSG_TRUNC, drops from PACKET_STATISTICS. The receive buffer is bounded (SO_RCVBUFFORCE): a slow reader loses
packets (counted as drops), it never makes the kernel or this process hold more memory.

Filters are compiled by libpcap itself through ctypes (`pcap_open_dead` + `pcap_compile`): the pcap-filter
language is libpcap's, so libpcap compiles it exactly as tcpdump would, with libpcap's own error text, without
a process per filter and without needing tcpdump installed (libpcap0.8 comes with tshark and most tools).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import socket
import struct
import threading
from dataclasses import dataclass

from ..errors import FeatureMissing, UsageError
from .netns import run_in_netns

__all__ = ["BpfInsn", "PacketSocket", "RawPacket", "compile_filter"]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD on 64-bit: a struct timespec of two longs
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
DLT_EN10MB = 1
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
DEFAULT_SNAPLEN = 262144
DEFAULT_RCVBUF = 4 << 20

BpfInsn = tuple[int, int, int, int]  # code, jt, jf, k: one `struct sock_filter`


# ---- filters: libpcap through ctypes --------------------------------------------------------------------
class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


_pcap_lock = threading.Lock()  # pcap_compile is not thread-safe in every libpcap release
_pcap: ctypes.CDLL | None = None


def _libpcap() -> ctypes.CDLL:
    global _pcap
    if _pcap is not None:
        return _pcap
    names = ["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"]
    found = ctypes.util.find_library("pcap")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_uint32]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_freecode.restype = None
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.pcap_close.restype = None
        _pcap = lib
        return lib
    raise FeatureMissing("capture filters need libpcap, which is not installed",
                         "install it (Debian: apt-get install libpcap0.8), or capture without --filter")


def compile_filter(expr: str, snaplen: int = DEFAULT_SNAPLEN) -> list[BpfInsn]:
    """Compile a pcap-filter expression for Ethernet frames to classic BPF; UsageError with libpcap's text."""
    lib = _libpcap()
    with _pcap_lock:
        handle = lib.pcap_open_dead(DLT_EN10MB, snaplen)
        if not handle:
            raise FeatureMissing("libpcap could not open a dead handle to compile the filter")
        try:
            prog = _BpfProgram()
            if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
                text = (lib.pcap_geterr(handle) or b"syntax error").decode(errors="replace")
                raise UsageError(f"bad capture filter {expr!r}: {text}",
                                 "write a pcap-filter expression, as for tcpdump: e.g. 'icmp', "
                                 "'tcp port 80', 'host 10.0.0.2 and not arp' (man 7 pcap-filter)")
            try:
                return [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
                        for i in range(prog.bf_len)]
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)


def _attach_filter(sock: socket.socket, insns: list[BpfInsn]) -> None:
    arr = (_BpfInsn * len(insns))(*[_BpfInsn(c, t, f, k) for c, t, f, k in insns])
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; } (padding to the pointer)
    fprog = struct.pack("HxxxxxxQ", len(insns), ctypes.addressof(arr))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies the program


# ---- the socket ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RawPacket:
    ts_ns: int  # CLOCK_REALTIME nanoseconds, from the kernel
    data: bytes  # the first snaplen bytes of the frame
    length: int  # the frame's length on the wire
    outgoing: bool  # sent by this interface (else received)


class PacketSocket:
    """A packet socket on IFNAME inside namespace NETNS. `recv()` returns a packet, or None when woken/timed out."""

    def __init__(self, netns: str, ifname: str, bpf: list[BpfInsn] | None = None,
                 snaplen: int = DEFAULT_SNAPLEN, rcvbuf: int = DEFAULT_RCVBUF) -> None:
        self.netns = netns
        self.ifname = ifname
        self.snaplen = snaplen
        self.sock = run_in_netns(netns, lambda: self._open(ifname, bpf, rcvbuf))
        self._buf = bytearray(max(snaplen, 2048))
        self._view = memoryview(self._buf)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self.sock.fileno(), select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        self.drops = 0
        self.closed = False
        self._close_lock = threading.Lock()

    @staticmethod
    def _open(ifname: str, bpf: list[BpfInsn] | None, rcvbuf: int) -> socket.socket:
        try:
            socket.if_nametoindex(ifname)
        except OSError:
            raise UsageError(f"no interface {ifname!r} in this namespace") from None
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: queues nothing yet
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            if bpf:
                _attach_filter(sock, bpf)
            sock.bind((ifname, ETH_P_ALL))
        except BaseException:
            sock.close()
            raise
        return sock

    def wake(self) -> None:
        """Make a blocked `recv` return None now (from any thread)."""
        if self.closed:
            return
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def recv(self, timeout: float | None = None) -> RawPacket | None:
        events = self._poll.poll(None if timeout is None else int(timeout * 1000))
        if not any(fd == self.sock.fileno() for fd, _ in events):
            return None
        try:
            nbytes, anc, _flags, addr = self.sock.recvmsg_into([self._view], 64,
                                                               socket.MSG_TRUNC | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        ts_ns = 0
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack_from("qq", data)
                ts_ns = sec * 1_000_000_000 + nsec
        caplen = min(nbytes, len(self._buf), self.snaplen)
        return RawPacket(ts_ns, bytes(self._view[:caplen]), nbytes, addr[2] == PACKET_OUTGOING)

    def stats(self) -> tuple[int, int]:
        """(packets, drops) since the last call, as the kernel counts them (PACKET_STATISTICS resets)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        packets, drops = struct.unpack("II", raw)
        self.drops += drops
        return packets, drops

    def close(self) -> None:
        """Close the socket and the wake-up pipe (idempotent; not while another thread is in recv)."""
        with self._close_lock:
            if self.closed:
                return
            try:
                self.stats()
            except OSError:
                pass
            self.closed = True
            self.sock.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
