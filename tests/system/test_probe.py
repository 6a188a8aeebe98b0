"""Probes on real sockets, without root: 127.0.0.1 with ephemeral ports only. The probes inside namespaces
are in tests/kernel/test_probe.py. No traffic goes to any other address."""

from __future__ import annotations

import errno
import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from unit.test_probe import LO, cli

from nslab import probe
from nslab.errors import NslabError

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ helpers


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Listener:
    """probe.listen on a thread, on an ephemeral port of 127.0.0.1."""

    def __init__(self, **kwargs: object) -> None:
        self.lines: list[str] = []
        self.events: list[dict[str, object]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.result: list[int] = []
        self.error: list[BaseException] = []

        def run() -> None:
            try:
                self.result.append(
                    probe.listen(
                        0,
                        host=kwargs.pop("host", LO),  # type: ignore[arg-type]
                        out=self.lines.append,
                        ready=self.ready,
                        stop=self.stop,
                        events=self.events.append,
                        **kwargs,  # type: ignore[arg-type]
                    )
                )
            except BaseException as exc:
                self.error.append(exc)
                self.ready.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.ready.wait(3)
        assert not self.error, self.error
        assert self.lines[0].startswith(f"Listening on {LO} ")
        self.port = int(self.lines[0].split()[-1])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(3)
        assert not self.thread.is_alive()


@pytest.fixture
def listener() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(**kwargs: object) -> Listener:
        lst = Listener(**kwargs)
        made.append(lst)
        return lst

    yield make
    for lst in made:
        lst.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that is bound (so nobody else takes it) but not listening: RST."""
    with socket.socket() as s:
        s.bind((LO, 0))
        yield s.getsockname()[1]




# -------------------------------------------------------------------------------------------- TCP listen


def test_listen_prints_connection_and_received_text(listener: Callable[..., Listener]) -> None:
    lst = listener()
    with socket.create_connection((LO, lst.port)) as c:
        client_port = c.getsockname()[1]
        c.sendall(b"GET / HTTP/1.1\r\nHost: localhost:8900\r\n")
        c.sendall(b"Accept: */*\r\n\r\nno newline at the end")
    wait_for(lambda: any(e.get("event") == "closed" for e in lst.events))
    assert lst.lines[1:] == [
        f"Connection from 127.0.0.1:{client_port}",
        "GET / HTTP/1.1",
        "Host: localhost:8900",
        "Accept: */*",
        "",
        "no newline at the end",
    ]
    assert {"event": "connection", "peer": f"127.0.0.1:{client_port}"} in lst.events


def test_connect_success_is_seen_by_listener(listener: Callable[..., Listener]) -> None:
    lst = listener()
    res = probe.connect(LO, lst.port, timeout=2)
    assert res.ok and res.reason == "connected" and res.errno is None
    assert res.target == f"127.0.0.1:{lst.port}" and res.elapsed_ms >= 0
    wait_for(lambda: any(line.startswith("Connection from 127.0.0.1:") for line in lst.lines))


def test_listen_once_returns_after_first_connection() -> None:
    lines: list[str] = []
    ready = threading.Event()
    box: list[int] = []
    t = threading.Thread(
        target=lambda: box.append(probe.listen(0, once=True, host=LO, out=lines.append, ready=ready))
    )
    t.start()
    assert ready.wait(3)
    port = int(lines[0].split()[-1])
    with socket.create_connection((LO, port)) as c:
        c.sendall(b"hello\n")
    t.join(3)
    assert not t.is_alive() and box == [1]
    assert lines[-1] == "hello"
    # The listening socket is closed: the port refuses now.
    assert probe.connect(LO, port, timeout=1).reason == "connection refused"


def test_listen_stops_on_keyboard_interrupt_and_closes_socket() -> None:
    lines: list[str] = []

    def out(text: str) -> None:
        lines.append(text)
        if text.startswith("Connection from"):
            raise KeyboardInterrupt

    sock = probe.open_listener(0, host=LO)
    port = sock.getsockname()[1]
    t_err: list[BaseException] = []

    def run() -> None:
        try:
            probe.serve(sock, out=out)
        except BaseException as exc:
            t_err.append(exc)

    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: bool(lines))
    socket.create_connection((LO, port)).close()
    t.join(3)
    assert len(t_err) == 1 and isinstance(t_err[0], KeyboardInterrupt)
    assert sock.fileno() == -1
    assert not probe.connect(LO, port, timeout=1).ok


def test_listen_address_in_use_is_exit_1() -> None:
    with socket.socket() as s:
        s.bind((LO, 0))
        s.listen()
        with pytest.raises(NslabError, match="address already in use") as info:
            probe.open_listener(s.getsockname()[1], host=LO)
    assert info.value.exit_code == 1


def test_cli_listen_sigint_exits_130_without_traceback() -> None:
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tests']; from unit.test_probe import cli; "
        "sys.exit(cli(['probe', 'listen', '0', '--host', '127.0.0.1']))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ROOT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Listening on 127.0.0.1 ")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted" in err


# ---------------------------------------------------------------------------------------- connect failures


def test_connect_refused(closed_port: int) -> None:
    res = probe.connect(LO, closed_port, timeout=2)
    assert not res.ok
    assert res.reason == "connection refused" and res.errno == errno.ECONNREFUSED


def test_connect_timeout_when_accept_queue_full() -> None:
    with socket.socket() as srv:
        srv.bind((LO, 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        fillers: list[socket.socket] = []
        try:
            for _ in range(8):  # fill the accept queue until a SYN goes unanswered
                c = socket.socket()
                c.settimeout(0.3)
                fillers.append(c)
                try:
                    c.connect((LO, port))
                except TimeoutError:
                    break
            res = probe.connect(LO, port, timeout=0.5)
        finally:
            for c in fillers:
                c.close()
    assert not res.ok
    assert res.reason == "timed out after 0.5 s" and res.errno is None
    assert 400 <= res.elapsed_ms < 2000


def test_cli_connect_exit_codes_and_message(
    listener: Callable[..., Listener], closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    lst = listener()
    assert cli(["probe", "connect", LO, str(lst.port)]) == 0
    assert "reachable" in capsys.readouterr().out
    assert cli(["probe", "connect", LO, str(closed_port)]) == 1
    assert (
        capsys.readouterr().err.strip() == f"nslab: 127.0.0.1:{closed_port} unreachable: connection refused"
    )
    assert cli(["--json", "probe", "connect", LO, str(closed_port)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["reason"] == "connection refused"
    assert data["errno"] == errno.ECONNREFUSED and data["errno_name"] == "ECONNREFUSED"
    assert cli(["probe", "connect", LO, str(lst.port), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


# ------------------------------------------------------------------------------------------------------ UDP


def test_udp_echo(listener: Callable[..., Listener]) -> None:
    lst = listener(udp=True, echo=True)
    res = probe.connect(LO, lst.port, udp=True, timeout=2)
    assert res.ok and res.proto == "udp" and res.reason == f"reply received ({len(probe.UDP_PAYLOAD)} bytes)"
    wait_for(lambda: "nslab probe" in lst.lines)
    assert any(line.startswith("Datagram from 127.0.0.1:") for line in lst.lines)


def test_udp_closed_port_is_refused_by_icmp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LO, 0))
        port = s.getsockname()[1]
    res = probe.connect(LO, port, udp=True, timeout=2)
    assert not res.ok and res.reason == "connection refused" and res.errno == errno.ECONNREFUSED


def test_udp_silent_listener_is_no_reply(listener: Callable[..., Listener]) -> None:
    lst = listener(udp=True)  # prints, answers nothing: like nc -lu
    res = probe.connect(LO, lst.port, udp=True, timeout=0.3)
    assert not res.ok and res.errno is None
    assert res.reason == "no reply after 0.3 s (open but silent, or dropped)"
    wait_for(lambda: "nslab probe" in lst.lines)


# ----------------------------------------------------------------------------------------------------- HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, list[tuple[str, str]]]] = []  # noqa: RUF012

    def do_GET(self) -> None:
        _Handler.seen.append((self.requestline, list(self.headers.items())))
        status = 404 if self.path == "/missing" else 200
        body = f"path={self.path}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    _Handler.seen.clear()
    srv = http.server.HTTPServer((LO, 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_http_get_like_curl(http_server: int) -> None:
    res = probe.http(f"http://127.0.0.1:{http_server}/index.html?a=1", timeout=3)
    assert res.status == 200 and res.body == b"path=/index.html?a=1\n"
    assert res.header("content-length") == str(len(res.body))
    line, headers = _Handler.seen[-1]
    assert line == "GET /index.html?a=1 HTTP/1.1"
    assert headers == [
        ("Host", f"127.0.0.1:{http_server}"),
        ("User-Agent", "nslab/0.1"),
        ("Accept", "*/*"),
    ]


def test_http_without_scheme_and_any_status_is_a_response(
    http_server: int, capsys: pytest.CaptureFixture[str]
) -> None:
    res = probe.http(f"127.0.0.1:{http_server}/missing")
    assert res.status == 404 and res.url == f"http://127.0.0.1:{http_server}/missing"
    assert cli(["probe", "http", f"127.0.0.1:{http_server}/missing"]) == 0
    assert capsys.readouterr().out == "path=/missing\n"
    assert cli(["--json", "probe", "http", f"http://127.0.0.1:{http_server}/"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == 200 and data["body"] == "path=/\n"


def test_http_against_probe_listen_http(listener: Callable[..., Listener]) -> None:
    lst = listener(answer_http=True)
    res = probe.http(f"http://localhost:{lst.port}/index.html")
    assert res.status == 200 and res.body == f"Hello from nslab probe listen on port {lst.port}\n".encode()
    wait_for(lambda: "Accept: */*" in lst.lines)
    assert lst.lines[2:6] == [
        "GET /index.html HTTP/1.1",
        f"Host: localhost:{lst.port}",
        "User-Agent: nslab/0.1",
        "Accept: */*",
    ]


def test_http_refused(closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(probe.ProbeFailed) as info:
        probe.http(f"http://127.0.0.1:{closed_port}/")
    assert info.value.result.reason == "connection refused" and info.value.exit_code == 1
    assert str(info.value) == f"127.0.0.1:{closed_port} unreachable: connection refused"
    assert cli(["probe", "http", f"http://127.0.0.1:{closed_port}/"]) == 1
    assert (
        capsys.readouterr().err.strip() == f"nslab: 127.0.0.1:{closed_port} unreachable: connection refused"
    )


def test_http_silent_server_times_out(listener: Callable[..., Listener]) -> None:
    lst = listener()  # like nc: prints the request, never answers
    with pytest.raises(probe.ProbeFailed, match=r"no HTTP response: timed out after 0\.3 s"):
        probe.http(f"http://127.0.0.1:{lst.port}/", timeout=0.3)


def test_http_server_closing_without_answer(listener: Callable[..., Listener]) -> None:
    with socket.socket() as srv:
        srv.bind((LO, 0))
        srv.listen()

        def accept_and_close() -> None:
            c, _ = srv.accept()
            c.recv(1000)
            c.close()

        t = threading.Thread(target=accept_and_close)
        t.start()
        with pytest.raises(probe.ProbeFailed, match="connection closed before a response"):
            probe.http(f"http://127.0.0.1:{srv.getsockname()[1]}/", timeout=2)
        t.join(3)


# ------------------------------------------------------------------------------------------------ validation


