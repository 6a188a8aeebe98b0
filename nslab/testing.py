"""Assertions for tests of labs: reachability, isolation, open ports, and waiting with a clear message.

Every helper retries until its timeout (the network needs a moment: ARP, a program binding its port, a
route added), and raises AssertionError with a message that says what was tried, from where, for how long,
and what the last attempt answered. Bad input (an unknown node, a bad port) raises nslab's UsageError, as
everywhere else. All traffic stays between the lab's namespaces.

    from nslab.testing import assert_reachable, assert_unreachable, assert_port_open, wait_until
"""

from __future__ import annotations

import ipaddress
import math
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from . import probe
from .errors import NslabError, UsageError

if TYPE_CHECKING:
    from .lab.lab import Lab

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.1,
    message: str | Callable[[], str] | None = None,
) -> T:
    """Call predicate until it returns something truthy, and return that; AssertionError after timeout.

    An AssertionError raised by the predicate counts as "not yet" (so assertions can be waited on) and its
    text joins the final message. message: what was awaited (a string, or a callable for a message built
    at failure time).
    """
    if not timeout >= 0:
        raise UsageError(f"timeout {timeout!r} must not be negative", "give a timeout in seconds, e.g. 5")
    if not interval > 0:
        raise UsageError(f"interval {interval!r} must be positive", "give an interval in seconds, e.g. 0.1")
    deadline = time.monotonic() + timeout
    tries = 0
    last: T | None = None
    last_error: AssertionError | None = None
    while True:
        tries += 1
        try:
            last = predicate()
            last_error = None
        except AssertionError as exc:
            last, last_error = None, exc
        if last:
            return last
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    what = message() if callable(message) else message
    text = f"{what or 'condition'}: not met within {timeout:g} s ({tries} tries)"
    if last_error is not None:
        text += f"; last: {last_error}"
    else:
        text += f"; last value: {last!r}"
    raise AssertionError(text)


def _target(lab: Lab, b: str) -> tuple[str, str]:
    """(address, label): a node name becomes its first IPv4 address (IPv6 if it has none); an address stays."""
    try:
        ip = ipaddress.ip_address(b)
        return str(ip), str(ip)
    except ValueError:
        pass
    node = lab[b]  # NotFoundError with the known nodes
    addr = node.ipv4
    if addr is None:
        six = [a for a in node.addresses if ipaddress.ip_interface(a).version == 6]
        if not six:
            raise UsageError(f"node {b!r} of lab {lab.name!r} has no address", "give it a link, or an address")
        addr = str(ipaddress.ip_interface(six[0]).ip)
    return addr, f"{b} ({addr})"


def _ping_once(lab: Lab, a: str, addr: str, wait: float) -> tuple[bool, str]:
    argv = ["ping", "-n", "-c1", f"-W{max(1, round(wait))}", addr]
    try:
        res = lab[a].run(argv, resolve=False, capture_output=True, text=True, timeout=wait + 2)
    except subprocess.TimeoutExpired:
        return False, "ping did not finish"
    except FileNotFoundError:
        raise NslabError("ping is not installed", "install iputils-ping") from None
    return res.returncode == 0, _ping_summary(res.stdout, res.stderr, res.returncode)


def _ping_summary(out: str, err: str, code: int) -> str:
    lines = [ln.strip() for ln in (out + "\n" + err).splitlines() if ln.strip()]
    for ln in lines:
        if "bytes from" in ln or "Unreachable" in ln or "unreachable" in ln or "ping:" in ln:
            return ln
    for ln in lines:
        if "packet loss" in ln:
            return ln
    return lines[-1] if lines else f"ping exited with status {code}"


def assert_reachable(lab: Lab, a: str, b: str, timeout: float = 5.0) -> None:
    """Node A gets an ICMP echo reply from B (a node: its first address; or an address), within timeout s."""
    addr, label = _target(lab, b)
    lab[a]
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        ok, last = _ping_once(lab, a, addr, 1.0)
        if ok:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise AssertionError(
        f"{a} cannot reach {label} in lab {lab.name!r}: no ping reply within {timeout:g} s "
        f"({tries} tries); last: {last}"
    )


def assert_unreachable(lab: Lab, a: str, b: str, within: float = 2.0) -> None:
    """Node A gets NO reply from B during the whole window of `within` seconds (pings every 0.2 s)."""
    addr, label = _target(lab, b)
    lab[a]
    if not within > 0:
        raise UsageError(f"within {within!r} must be positive", "give a window in seconds, e.g. 2")
    # Pings every 0.2 s until the window ends; ping's exit status 0 means some reply came back. An early
    # exit without a reply ("network is unreachable") is run again: the window is what is asserted.
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        argv = ["ping", "-n", "-c", str(max(1, math.ceil(left / 0.2))), "-i", "0.2", "-W", "1", addr]
        try:
            res = lab[a].run(argv, resolve=False, capture_output=True, text=True, timeout=left + 5)
        except FileNotFoundError:
            raise NslabError("ping is not installed", "install iputils-ping") from None
        if res.returncode == 0:
            replies = [ln for ln in res.stdout.splitlines() if "bytes from" in ln]
            first = replies[0].strip() if replies else _ping_summary(res.stdout, res.stderr, 0)
            raise AssertionError(
                f"{a} reached {label} in lab {lab.name!r}, which it should not: "
                f"{len(replies)} replies within {within:g} s; first: {first}"
            )
        if res.returncode not in (1, 2):
            raise NslabError(f"ping from {a} failed: {_ping_summary(res.stdout, res.stderr, res.returncode)}")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def assert_port_open(
    lab: Lab, node: str, port: int, from_node: str | None = None, timeout: float = 5.0
) -> None:
    """TCP PORT of NODE accepts a connection within timeout s: from inside NODE on 127.0.0.1 (from_node
    None), or from FROM_NODE's namespace to NODE's first address."""
    port = probe.check_port(port)
    target = lab[node]
    if from_node is None:
        host, src, where = "127.0.0.1", target.netns, f"from inside {node} on 127.0.0.1"
    else:
        host, _ = _target(lab, node)
        src, where = lab[from_node].netns, f"from {from_node} to {node} ({host})"
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        left = deadline - time.monotonic()
        res = probe.connect(host, port, timeout=max(0.05, min(1.0, left)), netns=src)
        if res.ok:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise AssertionError(
        f"port {port} of {node} in lab {lab.name!r} is not open {where} within {timeout:g} s "
        f"({tries} tries); last: {res.reason}"
    )


def status_text(lab: Lab) -> str:
    """Nodes, interfaces, addresses and routes of a running lab, read from the kernel (as `lab status`)."""
    from .namespace import Namespace
    from .show import addr_line, link_lines, route_line

    out: list[str] = []
    for node in lab.plan.nodes:
        out.append(f"{node.name} ({node.kind}, netns {node.netns})")
        try:
            ns = Namespace.open(node.netns)
        except NslabError as exc:
            out.append(f"  (cannot read: {exc.message})")
            continue
        try:
            links = [lk for lk in ns.rtnl.links(with_addrs=True) if lk.ifname != "lo"]
            routes = ns.rtnl.routes()
        except (NslabError, OSError) as exc:
            out.append(f"  (cannot read: {exc})")
            continue
        finally:
            ns.close()
        for lk in links:
            out.append("  " + link_lines(lk)[0])
            out.extend("  " + addr_line(a) for a in lk.addr_info if a.scope != "link")
        out.extend("    route " + route_line(r) for r in routes if r.protocol != "kernel")
    return "\n".join(out)


__all__ = ["assert_port_open", "assert_reachable", "assert_unreachable", "status_text", "wait_until"]
