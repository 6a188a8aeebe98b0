"""Probes: the seed post's `nc -lnvp 8900` (listen), a TCP/UDP reachability check (connect), and its
`curl localhost:8900` (http). Standard library only.

Every probe can run inside a named namespace (`netns=`): the sockets are created (and names resolved) on a
thread that has entered it, through `nslab.kernel.netns.run_in_netns`; a socket stays in the namespace it
was created in, so the I/O itself then runs on the caller's thread (Ctrl-C keeps working).

What the kernel answers, measured (Linux, see tests/kernel/test_probe.py):

- fresh namespace, `lo` DOWN: TCP or UDP `connect()` to 127.0.0.1 (or any IPv4 address) fails at once with
  ENETUNREACH "network is unreachable" (no route at all: the local table is empty while lo is down); to
  ::1 it fails with EADDRNOTAVAIL (no IPv6 address exists yet). Listening there succeeds nonetheless: the
  seed post's "netstat shows a server but nothing gets through".
- `lo` up, nobody listening: ECONNREFUSED "connection refused" (TCP RST; for UDP the ICMP port unreachable,
  reported on the connected socket's next recv).
- route of type `unreachable`: EHOSTUNREACH "no route to host"; `prohibit`: EACCES; `blackhole`: EINVAL.
- accept queue full (backlog exhausted) or packets dropped: no answer; the probe says "timed out after S s".

UDP semantics of `connect(udp=True)`: a connected UDP socket sends one datagram (`nslab probe\\n`) and waits
up to `timeout` for any reply. A reply means reachable (ok). An ICMP port unreachable surfaces as
ECONNREFUSED on recv: not reachable, "connection refused". Silence is ambiguous (the port may be open but
the program never answers, or the datagram was dropped): not ok, "no reply after S s (open but silent, or
dropped)", errno None. `listen(udp=True, echo=True)` answers, so a listen/connect pair succeeds.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import ipaddress
import math
import os
import re
import selectors
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import client as http_client
from typing import TypeVar

from .errors import NslabError, PermissionDenied, UsageError
from .names import check_utf8

T = TypeVar("T")

USER_AGENT = "nslab/0.1"
UDP_PAYLOAD = b"nslab probe\n"
_POLL_S = 0.1  # how often a listener checks `stop`

# The one-line reasons, by errno (the wording `connect` and `http` share).
REASONS: dict[int, str] = {
    errno_mod.ECONNREFUSED: "connection refused",
    errno_mod.ENETUNREACH: "network is unreachable",
    errno_mod.EHOSTUNREACH: "no route to host",
    errno_mod.EADDRNOTAVAIL: "address not available (no local address to send from)",
    errno_mod.EACCES: "permission denied (a prohibit route or a firewall rule)",
    errno_mod.EPERM: "operation not permitted (a firewall rule)",
    errno_mod.EINVAL: "invalid argument (a blackhole route?)",
    errno_mod.ECONNRESET: "connection reset by peer",
    errno_mod.ETIMEDOUT: "timed out",
}

Out = Callable[[str], None]
Events = Callable[[dict[str, object]], None]


class ProbeFailed(NslabError):
    """The target could not be reached or did not answer (exit status 1). `result` says how."""

    def __init__(self, message: str, result: ProbeResult, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.result = result


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    elapsed_ms: float
    errno: int | None
    target: str = ""
    proto: str = "tcp"
    hint: str | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["errno_name"] = errno_mod.errorcode.get(self.errno) if self.errno is not None else None
        return data


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    reason: str = ""
    url: str = ""
    elapsed_ms: float = 0.0

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "status": self.status,
            "reason": self.reason,
            "headers": [[k, v] for k, v in self.headers],
            "body": self.body.decode("utf-8", "backslashreplace"),
            "elapsed_ms": self.elapsed_ms,
        }


# ---------------------------------------------------------------------------------------------- validation


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")  # a label of a host name (RFC 1123, and '_' as seen)


def check_port(port: object, what: str = "port", allow_zero: bool = False) -> int:
    """An int, or its plain ASCII decimal spelling: int() would also take '٣', '+80', '8_0' and ' 80'."""
    low = 0 if allow_zero else 1
    text = str(port) if isinstance(port, int) and not isinstance(port, bool) else port
    value = -1
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 5:
        value = int(text)
    if not low <= value <= 65535:
        raise UsageError(f"{what} {port!r} is not a port number", f"give a {what} between {low} and 65535")
    return value


def check_host(host: str, what: str = "host") -> str:
    """An IP address (an IPv6 one may carry its %zone) or an ASCII host name: anything else would reach
    getaddrinfo, whose IDNA encoding raises UnicodeError on a 64-character label or odd unicode."""
    if not isinstance(host, str) or not host.strip():
        raise UsageError(f"{what} is empty", "give an address or name, e.g. 127.0.0.1 or localhost")
    host = host.strip()
    check_utf8(host, f"{what} {host!r}")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not host.isascii():
        raise UsageError(f"invalid {what} {host!r}: not ASCII",
                         "give an address, or a host name in its ASCII (punycode) form")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.rstrip(".").split(".")):
        raise UsageError(f"invalid {what} {host!r}",
                         "give an address or a host name (letters, digits and '-' between dots, at most 63 "
                         "between two dots), e.g. 127.0.0.1 or localhost")
    return host


def check_timeout(timeout: float) -> float:
    """Seconds, finite: inf passes `> 0` and then overflows the socket's C timeout."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) \
            or not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(f"timeout {timeout!r} is not a time from 0 to {MAX_TIMEOUT:g} s",
                         "give --timeout in seconds, e.g. 3")
    return float(timeout)


MAX_TIMEOUT = 86400.0
MAX_URL = 8192


def _url_host(host: str, url: str) -> str:
    """The host part of a URL: a bracketed IPv6 literal, an IPv4 literal or an ASCII host name."""
    def bad(why: str, hint: str = "use http://HOST[:PORT]/PATH, e.g. http://localhost:8900/") -> UsageError:
        return UsageError(f"URL {url!r}: {why}", hint)

    if not host:
        return ""
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise bad("zone ids ('%25...') are not supported", "give a global or loopback address, e.g. [::1]")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise bad(f"{host!r} is not an IPv6 address",
                      "write an IPv6 address in brackets, e.g. http://[::1]:80/") from None
        return inner
    if ":" in host:
        raise bad("an IPv6 address must be in brackets", "write e.g. http://[::1]:8900/")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.rstrip(".").split(".")):
        raise bad(f"{host!r} is not a host name", "a host name is letters, digits and '-' between dots, e.g. web1")
    return host


def parse_url(url: str) -> tuple[str, int, str, str]:
    """-> (host, port, path-with-query, canonical url). Like curl, `localhost:8900` means http://...

    Checked before any socket: ASCII only (a path is percent-encoded, a host in its punycode form), no
    spaces or control characters (they would end the request line), no user:password, a port in decimal.
    """
    if not isinstance(url, str) or not url.strip():
        raise UsageError("URL is empty", "give a URL such as http://localhost:8900/")
    text = url  # not stripped: a trailing CR LF (a pasted line) is refused below, not silently dropped
    check_utf8(text, f"URL {text!r}")
    if len(text) > MAX_URL:
        raise UsageError(f"URL is {len(text)} characters long, more than {MAX_URL}", "give a shorter URL")
    odd = next((i for i, c in enumerate(text) if not c.isascii() or not c.isprintable() or c.isspace()), None)
    if odd is not None:
        raise UsageError(f"URL {url!r} has {text[odd]!r} at position {odd + 1}",
                         "percent-encode spaces and non-ASCII characters in the path (%20, %C3%A9); give a "
                         "non-ASCII host name in its ASCII (punycode) form")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as exc:
        raise UsageError(f"URL {url!r} is malformed ({exc})", "use http://HOST[:PORT]/PATH") from None
    if parts.scheme.lower() != "http":
        raise UsageError(
            f"URL scheme {parts.scheme!r} is not supported in {url!r}",
            "nslab probe http speaks plain HTTP only: use http://HOST[:PORT]/PATH",
        )
    netloc = parts.netloc
    if "@" in netloc:
        raise UsageError(f"URL {url!r} holds a user name or password", "drop the 'USER@' part: there is no login")
    hostpart, port_text = netloc, ""
    if netloc.startswith("["):
        end = netloc.find("]")
        hostpart, rest = (netloc[: end + 1], netloc[end + 1:]) if end > 0 else (netloc, "")
        if rest and not rest.startswith(":"):
            raise UsageError(f"URL {url!r} is malformed after the address", "write http://[::1]:8900/")
        port_text = rest[1:]
        has_port = bool(rest)
    else:
        has_port = ":" in netloc and netloc.count(":") == 1
        if has_port:
            hostpart, _, port_text = netloc.partition(":")
    host = _url_host(hostpart, url)
    if not host:
        raise UsageError(
            f"URL {url!r} has no host", "use http://HOST[:PORT]/PATH, e.g. http://localhost:8900/"
        )
    port = 80
    if has_port and port_text:  # http://h:/ is the default port (RFC 3986)
        try:
            port = check_port(port_text, "URL port")
        except UsageError:
            raise UsageError(f"URL {url!r} has a bad port", "use a port between 1 and 65535") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port, path, urllib.parse.urlunsplit(("http", netloc, path, "", ""))


# ------------------------------------------------------------------------------------------------- helpers


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run fn in namespace `netns` (None: here). Sockets fn creates belong to that namespace."""
    if netns is None:
        return fn()
    from .kernel.netns import run_in_netns

    return run_in_netns(netns, fn)


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reason_for(err: BaseException, timeout: float) -> tuple[str, int | None]:
    if isinstance(err, TimeoutError | socket.timeout) and getattr(err, "errno", None) in (None, 0):
        return f"timed out after {timeout:g} s", None
    if isinstance(err, socket.gaierror):
        return f"cannot resolve name: {err.strerror}", None
    num = getattr(err, "errno", None)
    if isinstance(num, int) and num:
        if num == errno_mod.ETIMEDOUT:
            return f"timed out after {timeout:g} s", num
        return REASONS.get(num, os.strerror(num).lower()), num
    return str(err) or type(err).__name__, None


def hint_for(host: str, num: int | None, netns: str | None) -> str | None:
    if num not in (errno_mod.ENETUNREACH, errno_mod.EADDRNOTAVAIL):
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return None
    where = f"-n {netns} " if netns else ""
    return f"lo is probably down in this namespace: nslab {where}link set lo up"


def _resolve(host: str, port: int, kind: socket.SocketKind) -> list[tuple[int, tuple[str, int]]]:
    infos = socket.getaddrinfo(host, port, type=kind)
    out: list[tuple[int, tuple[str, int]]] = []
    for family, _t, _p, _c, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            out.append((family, (str(sockaddr[0]), int(sockaddr[1]))))
    return out


def _open_sockets(
    host: str, port: int, kind: socket.SocketKind, netns: str | None
) -> list[tuple[socket.socket, tuple[str, int]]]:
    """Resolve and create (not connect) one socket per address, inside the namespace."""

    def make() -> list[tuple[socket.socket, tuple[str, int]]]:
        return [(socket.socket(fam, kind), addr) for fam, addr in _resolve(host, port, kind)]

    return in_netns(netns, make)


def _close_all(socks: list[tuple[socket.socket, tuple[str, int]]]) -> None:
    for sock, _ in socks:
        sock.close()


def _connect_tcp(
    host: str, port: int, timeout: float, netns: str | None
) -> tuple[socket.socket | None, ProbeResult]:
    """Connect like curl: each resolved address in turn, within one overall deadline."""
    target = hostport(host, port)
    start = time.monotonic()
    deadline = start + timeout

    def fail(err: BaseException) -> tuple[None, ProbeResult]:
        reason, num = reason_for(err, timeout)
        elapsed = (time.monotonic() - start) * 1000
        return None, ProbeResult(False, reason, elapsed, num, target, "tcp", hint_for(host, num, netns))

    try:
        socks = _open_sockets(host, port, socket.SOCK_STREAM, netns)
    except OSError as exc:
        return fail(exc)
    last: BaseException = TimeoutError()
    for i, (sock, addr) in enumerate(socks):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            last = TimeoutError()
            break
        try:
            sock.settimeout(remaining)
            sock.connect(addr)
        except OSError as exc:
            last = exc
            sock.close()
            continue
        _close_all(socks[i + 1 :])
        elapsed = (time.monotonic() - start) * 1000
        return sock, ProbeResult(True, "connected", elapsed, None, target, "tcp")
    _close_all(socks)
    return fail(last)


def _probe_udp(host: str, port: int, timeout: float, netns: str | None) -> ProbeResult:
    target = hostport(host, port)
    start = time.monotonic()

    def result(ok: bool, reason: str, num: int | None) -> ProbeResult:
        elapsed = (time.monotonic() - start) * 1000
        return ProbeResult(ok, reason, elapsed, num, target, "udp", hint_for(host, num, netns))

    try:
        socks = _open_sockets(host, port, socket.SOCK_DGRAM, netns)
    except OSError as exc:
        return result(False, *reason_for(exc, timeout))
    try:
        if not socks:
            return result(False, "cannot resolve name: no address", None)
        sock, addr = socks[0]
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
            sock.send(UDP_PAYLOAD)
            data = sock.recv(65535)
        except TimeoutError:
            return result(False, f"no reply after {timeout:g} s (open but silent, or dropped)", None)
        except OSError as exc:
            return result(False, *reason_for(exc, timeout))
        return result(True, f"reply received ({len(data)} bytes)", None)
    finally:
        _close_all(socks)


# --------------------------------------------------------------------------------------------------- probes


def connect(
    host: str, port: int, udp: bool = False, timeout: float = 3.0, *, netns: str | None = None
) -> ProbeResult:
    """Is HOST:PORT reachable? Never raises for network outcomes; raises UsageError for bad input."""
    host = check_host(host)
    port = check_port(port)
    timeout = check_timeout(timeout)
    if udp:
        return _probe_udp(host, port, timeout, netns)
    sock, res = _connect_tcp(host, port, timeout, netns)
    if sock is not None:
        sock.close()
    return res


class _HTTPConnection(http_client.HTTPConnection):
    """http.client, with the socket opened by nslab (in the namespace, with nslab's failure reasons)."""

    def __init__(self, host: str, port: int, timeout: float, netns: str | None) -> None:
        super().__init__(host, port, timeout=timeout)
        self._netns = netns
        self.probe: ProbeResult | None = None

    def connect(self) -> None:
        sock, res = _connect_tcp(self.host, self.port, float(self.timeout or 5.0), self._netns)
        self.probe = res
        if sock is None:
            raise ProbeFailed(f"{res.target} unreachable: {res.reason}", res, res.hint)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock


def http(url: str, timeout: float = 5.0, *, netns: str | None = None) -> HttpResult:
    """GET url like curl (HTTP/1.1, Host, User-Agent: nslab/0.1, Accept: */*).

    Any HTTP response is a result, whatever its status. Raises ProbeFailed when the server cannot be
    reached (same reasons as `connect`) or does not answer with HTTP; UsageError for a bad URL.
    """
    host, port, path, canonical = parse_url(url)
    timeout = check_timeout(timeout)
    conn = _HTTPConnection(host, port, timeout, netns)
    start = time.monotonic()
    target = hostport(host, port)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Accept", "*/*")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        headers = [(k, v) for k, v in resp.getheaders()]
        return HttpResult(
            resp.status, headers, body, resp.reason, canonical, (time.monotonic() - start) * 1000
        )
    except ProbeFailed:
        raise
    except (http_client.HTTPException, OSError) as exc:
        if isinstance(exc, http_client.RemoteDisconnected):
            reason, num = "connection closed before a response", None
        elif isinstance(exc, http_client.BadStatusLine):
            reason, num = f"not an HTTP response ({exc!s:.60})", None
        elif isinstance(exc, OSError):
            reason, num = reason_for(exc, timeout)
        else:
            reason, num = f"bad HTTP response ({type(exc).__name__}: {exc!s:.60})", None
        res = ProbeResult(False, reason, (time.monotonic() - start) * 1000, num, target, "tcp")
        raise ProbeFailed(f"{target}: no HTTP response: {reason}", res) from None
    finally:
        conn.close()


# ----------------------------------------------------------------------------------------------- listener


def http_reply(port: int) -> bytes:
    body = f"Hello from nslab probe listen on port {port}\n".encode()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "Server: nslab/0.1\r\n\r\n"
    )
    return head.encode() + body


def open_listener(
    port: int, udp: bool = False, host: str = "0.0.0.0", *, netns: str | None = None
) -> socket.socket:
    """A bound (and, for TCP, listening) socket. port 0 lets the kernel choose one."""
    port = check_port(port, allow_zero=True)
    host = check_host(host)
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    where = hostport(host, port)

    def make() -> socket.socket:
        try:
            infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise UsageError(f"cannot listen on {where}: {exc.strerror}", "give a local address") from None
        sock = socket.socket(infos[0][0], kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            if not udp:
                sock.listen(16)
        except OSError as exc:
            sock.close()
            num = exc.errno
            if num == errno_mod.EADDRINUSE:
                raise NslabError(
                    f"cannot listen on {where}: address already in use",
                    "another program listens there: pick another port or stop it",
                ) from None
            if num in (errno_mod.EACCES, errno_mod.EPERM):
                raise PermissionDenied(
                    f"cannot listen on {where}: permission denied", "ports below 1024 need root"
                ) from None
            if num == errno_mod.EADDRNOTAVAIL:
                raise UsageError(
                    f"cannot listen on {where}: {host} is not an address here",
                    "listen on 0.0.0.0 or on an address of this namespace",
                ) from None
            raise NslabError(f"cannot listen on {where}: {exc.strerror}") from None
        return sock

    return in_netns(netns, make)


def _peer(addr: tuple[str, int] | tuple[str, int, int, int]) -> str:
    return hostport(str(addr[0]), int(addr[1]))


class _Emitter:
    def __init__(self, out: Out, events: Events | None) -> None:
        self.out = out
        self.events = events

    def __call__(self, text: str | None, **event: object) -> None:
        if text is not None:
            self.out(text)
        if self.events is not None:
            self.events(event)


class _Conn:
    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.pending = b""  # a partial line not printed yet
        self.head = b""  # what arrived so far, to spot the end of an HTTP request head

    def lines(self, data: bytes, final: bool = False) -> list[str]:
        buf = self.pending + data
        parts = buf.split(b"\n")
        self.pending = b"" if final else parts.pop()
        if final and parts and parts[-1] == b"":
            parts.pop()
        return [p.rstrip(b"\r").decode("utf-8", "backslashreplace") for p in parts]


def serve(
    sock: socket.socket,
    udp: bool = False,
    once: bool = False,
    out: Out = print,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    *,
    answer_http: bool = False,
    echo: bool = False,
    events: Events | None = None,
) -> int:
    """Serve an open listener until `stop` is set, KeyboardInterrupt, or (once) the first peer is done.

    Returns how many connections (TCP) or datagrams (UDP) were handled. Closes `sock`.
    """
    emit = _Emitter(out, events)
    local = sock.getsockname()
    emit(
        f"Listening on {local[0]} {local[1]}",
        event="listening",
        address=str(local[0]),
        port=int(local[1]),
        proto="udp" if udp else "tcp",
    )
    sel = selectors.DefaultSelector()
    conns: dict[int, _Conn] = {}
    handled = 0
    try:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        if ready is not None:
            ready.set()
        while stop is None or not stop.is_set():
            for key, _mask in sel.select(_POLL_S):
                if key.fileobj is sock and udp:
                    try:
                        data, addr = sock.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        continue  # e.g. an ICMP error for an earlier echo: not ours to report
                    handled += 1
                    peer = _peer(addr)
                    emit(f"Datagram from {peer}", event="datagram", peer=peer, bytes=len(data))
                    text = data.decode("utf-8", "backslashreplace")
                    for line in _Conn(sock, peer).lines(data, final=True):
                        emit(line)
                    if events is not None:
                        events({"event": "data", "peer": peer, "text": text})
                    if echo:
                        with contextlib.suppress(OSError):
                            sock.sendto(data, addr)
                    if once:
                        return handled
                elif key.fileobj is sock:
                    try:
                        csock, addr = sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    handled += 1
                    csock.settimeout(2.0)
                    conn = _Conn(csock, _peer(addr))
                    conns[csock.fileno()] = conn
                    sel.register(csock, selectors.EVENT_READ)
                    emit(f"Connection from {conn.peer}", event="connection", peer=conn.peer)
                else:
                    conn = conns[key.fd]
                    if _read_conn(conn, emit, events, answer_http, echo, local):
                        sel.unregister(conn.sock)
                        del conns[key.fd]
                        conn.sock.close()
                        emit(None, event="closed", peer=conn.peer)
                        if once:
                            return handled
        return handled
    finally:
        for conn in conns.values():
            conn.sock.close()
        sel.close()
        sock.close()


def _read_conn(
    conn: _Conn,
    emit: _Emitter,
    events: Events | None,
    answer_http: bool,
    echo: bool,
    local: tuple[str, int] | tuple[str, int, int, int],
) -> bool:
    """Read what is there; print complete lines. True when the connection is over."""
    try:
        data = conn.sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        data = b""
    done = not data
    if data and events is not None:
        events({"event": "data", "peer": conn.peer, "text": data.decode("utf-8", "backslashreplace")})
    for line in conn.lines(data, final=done):
        emit(line)
    if done:
        return True
    if echo:
        try:
            conn.sock.sendall(data)
        except OSError:
            return True
    if answer_http:
        conn.head = (conn.head + data)[-65536:]
        if b"\r\n\r\n" in conn.head or b"\n\n" in conn.head:
            for line in conn.lines(b"", final=True):
                emit(line)
            try:
                conn.sock.sendall(http_reply(int(local[1])))
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return True
    return False


def listen(
    port: int,
    udp: bool = False,
    once: bool = False,
    host: str = "0.0.0.0",
    out: Out = print,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    *,
    answer_http: bool = False,
    echo: bool = False,
    events: Events | None = None,
    netns: str | None = None,
) -> int:
    """The seed's `nc -lnvp PORT`: print "Listening on 0.0.0.0 PORT", then for each TCP connection
    "Connection from 127.0.0.1:49636" and the lines received (each UDP datagram: "Datagram from ..." and
    its text). Answers nothing unless answer_http (a minimal HTTP 200, then close) or echo.

    once: return after the first connection closes (UDP: after the first datagram). Returns on `stop`
    (polled every 0.1 s); KeyboardInterrupt propagates after the sockets are closed. port 0: any free port
    (the "Listening on" line says which). Returns the number of connections or datagrams handled.
    """
    sock = open_listener(port, udp, host, netns=netns)
    return serve(sock, udp, once, out, ready, stop, answer_http=answer_http, echo=echo, events=events)
