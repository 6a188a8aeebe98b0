"""A small rtnetlink transport: message framing, attributes, requests, batches, extended-ack errors.

Own code rather than pyroute2 for speed (docs/architecture.md, "Why our own rtnetlink codec"): per request
pyroute2 costs 0.16-0.36 ms of Python, this framing about 0.01 ms, and lab bring-up is thousands of requests.
The encoders here are deliberately tiny; the message catalogue lives in `rtnl.py`.
"""

from __future__ import annotations

import errno as errno_mod
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the request's payload was not echoed
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended-ack attributes follow

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3

NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_ATTR = struct.Struct("=HH")
# Batches are cut to this many bytes and requests per sendmsg. The count bounds the acks that queue up
# before we read them (36 bytes each): they must fit the receive buffer, which the kernel caps at
# net.core.rmem_max (212992 by default) unless root forces it larger.
BATCH_BYTES = 64 * 1024
BATCH_REQUESTS = 256


def align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute (type-length-value, padded to 4 bytes)."""
    size = _ATTR.size + len(data)
    return _ATTR.pack(size, kind) + data + b"\0" * (align(size) - size)


def nested(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def attr_u16(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=H", value))


def attr_be16(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("!H", value))


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_s32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=i", value))


def parse_attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, bytes]:
    """Attributes of a message body from `offset`; a repeated type keeps its last value."""
    out: dict[int, bytes] = {}
    mv = memoryview(data)
    end = len(mv)
    while offset + 4 <= end:
        size, kind = _ATTR.unpack_from(mv, offset)
        if size < 4:
            break
        out[kind & NLA_TYPE_MASK] = bytes(mv[offset + 4 : offset + size])
        offset += align(size)
    return out


def attr_text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


@dataclass
class Message:
    type: int
    flags: int
    seq: int
    body: bytes


class NetlinkError(Exception):
    """The kernel answered a request with an error; `message` is its extended-ack text, if any."""

    def __init__(self, code: int, message: str | None, seq: int) -> None:
        self.code = code
        self.kernel_message = message
        self.seq = seq
        text = os.strerror(code)
        super().__init__(f"{text}: {message}" if message else text)


class NetlinkSocket:
    """An rtnetlink socket. It belongs to the network namespace of the thread that created it."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock = sock
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            try:
                sock.setsockopt(SOL_NETLINK, opt, 1)
            except OSError:
                pass  # older kernels: plain errors without text
        for force, plain, size in ((33, socket.SO_RCVBUF, 4 << 20), (32, socket.SO_SNDBUF, 1 << 20)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, size)  # SO_*BUFFORCE: root may pass rmem_max
            except OSError:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, plain, size)
                except OSError:
                    pass
        sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _frame(self, kind: int, flags: int, payload: bytes) -> tuple[int, bytes]:
        seq = self._next_seq()
        return seq, _HDR.pack(_HDR.size + len(payload), kind, flags | NLM_F_REQUEST, seq, 0) + payload

    def dump(self, kind: int, payload: bytes) -> list[Message]:
        """A dump request: every message the kernel returns until NLMSG_DONE."""
        seq, frame = self._frame(kind, NLM_F_DUMP, payload)
        self.sock.send(frame)
        out: list[Message] = []
        while True:
            for msg in self._recv():
                if msg.seq != seq:
                    continue
                if msg.type == NLMSG_DONE:
                    return out
                if msg.type == NLMSG_ERROR:
                    code, text = _parse_error(msg)
                    if code:
                        raise NetlinkError(code, text, seq)
                    continue
                out.append(msg)

    def get(self, kind: int, payload: bytes) -> Message:
        """A request answered by exactly one message (e.g. RTM_GETLINK by name)."""
        seq, frame = self._frame(kind, 0, payload)
        self.sock.send(frame)
        while True:
            for msg in self._recv():
                if msg.seq != seq:
                    continue
                if msg.type == NLMSG_ERROR:
                    code, text = _parse_error(msg)
                    raise NetlinkError(code or errno_mod.EIO, text, seq)
                return msg

    def request(self, kind: int, flags: int, payload: bytes) -> None:
        """One change request, acknowledged; raises NetlinkError on failure."""
        errors = self.batch([(kind, flags, payload)])
        if errors[0] is not None:
            raise errors[0]

    def batch(self, requests: Iterable[tuple[int, int, bytes]]) -> list[NetlinkError | None]:
        """Send many change requests with few syscalls; return one result per request, in order.

        The kernel handles every message of a send in turn and acknowledges each, so a failure does not
        stop the ones after it: callers that need all-or-nothing roll back using these results.
        """
        results: list[NetlinkError | None] = []
        pending: dict[int, int] = {}
        buf: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if not buf:
                return
            self.sock.send(b"".join(buf))
            buf.clear()
            size = 0
            while pending:
                for msg in self._recv():
                    if msg.type != NLMSG_ERROR or msg.seq not in pending:
                        continue
                    code, text = _parse_error(msg)
                    idx = pending.pop(msg.seq)
                    if code:
                        results[idx] = NetlinkError(code, text, msg.seq)

        for kind, flags, payload in requests:
            seq, frame = self._frame(kind, flags | NLM_F_ACK, payload)
            if size + len(frame) > BATCH_BYTES or len(buf) >= BATCH_REQUESTS:
                flush()
            pending[seq] = len(results)
            results.append(None)
            buf.append(frame)
            size += len(frame)
        flush()
        return results

    def _recv(self) -> Iterator[Message]:
        data = self.sock.recv(1024 * 1024)
        offset = 0
        while offset + _HDR.size <= len(data):
            size, kind, flags, seq, _pid = _HDR.unpack_from(data, offset)
            if size < _HDR.size:
                break
            yield Message(kind, flags, seq, data[offset + _HDR.size : offset + size])
            offset += align(size)


def _parse_error(msg: Message) -> tuple[int, str | None]:
    (code,) = struct.unpack_from("=i", msg.body, 0)
    text = None
    if msg.flags & NLM_F_ACK_TLVS:
        # nlmsgerr: error code, the request's header (and its payload unless capped), then TLVs.
        echoed = _HDR.size if msg.flags & NLM_F_CAPPED else align(_HDR.unpack_from(msg.body, 4)[0])
        attrs = parse_attrs(msg.body, 4 + echoed)
        if NLMSGERR_ATTR_MSG in attrs:
            text = attr_text(attrs[NLMSGERR_ATTR_MSG])
    return -code, text
