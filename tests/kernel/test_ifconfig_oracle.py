"""nslab.ifconfig against the real net-tools `ifconfig`, line by line, in namespaces this test creates.

Kernel test: needs root, `ip` and `ifconfig`. Every namespace is named nslabt-ifc-<random> and deleted in
a finally block; nothing outside them is touched. Traffic stays on loopback inside a namespace or on a
veth pair between two of these namespaces.

Each comparison reads the model through nslab's own kernel reader (`Rtnl.links(with_addrs=True)`) and
runs `ip netns exec NS ifconfig [-a]`; counters can move between the two reads (IPv6 router solicitations,
MLD reports), so a comparison is repeated until ifconfig's output is the same before and after the model
read. The inet6 order comes from the namespace's /proc/net/if_inet6 (it depends on a per-namespace random
hash seed, see nslab.ifconfig); a second comparison without it checks everything but that order.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nslab.ifconfig import format_all, parse_if_inet6
from nslab.model import Link

pytestmark = pytest.mark.kernel

IFCONFIG = shutil.which("ifconfig") or next(
    (p for p in ("/usr/sbin/ifconfig", "/sbin/ifconfig") if os.path.exists(p)), None
)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (creates network namespaces)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' is not installed"
    if IFCONFIG is None:
        return "net-tools 'ifconfig' is not installed"
    return None


@pytest.fixture(autouse=True)
def _need_kernel() -> None:
    reason = _skip_reason()
    if reason:
        print(f"skipping ifconfig oracle test: {reason}")
        pytest.skip(reason)


def sh(*args: str, check: bool = True) -> str:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


class Lab:
    """Namespaces made by this test; `close` deletes exactly those."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def ns(self) -> str:
        name = f"nslabt-ifc-{secrets.token_hex(4)}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        return name

    def close(self) -> None:
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=60)
        self.names.clear()


@pytest.fixture
def lab() -> Iterator[Lab]:
    lb = Lab()
    try:
        yield lb
    finally:
        lb.close()


def ip(ns: str, *args: str) -> None:
    sh("ip", "-n", ns, *args)


_PING = r"""
import os, socket, struct, sys, time
count, size = int(sys.argv[1]), int(sys.argv[2])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(REPLY_WAIT)
ident = os.getpid() & 0xffff
for seq in range(1, count + 1):
    payload = bytes(size)
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload, (sys.argv[3], 0))
    while True:
        data = s.recv(70000)
        t, _c, _k, i, q = struct.unpack_from("!BBHHH", data, (data[0] & 15) * 4)
        if t == 0 and i == ident and q == seq: break
"""


# How long one echo may take to come back: generous for a loaded machine, bounded. Requests are never sent
# twice (the counters that tests read would change), so the wait, not a retry, absorbs a slow machine.
REPLY_WAIT = 15.0


def ping(ns: str, dst: str, count: int = 3, size: int = 56) -> None:
    """`ping -c COUNT -s SIZE DST` inside NS (iputils may be missing, so a raw ICMP socket in Python)."""
    script = _PING.replace("REPLY_WAIT", repr(REPLY_WAIT))
    sh("ip", "netns", "exec", ns, sys.executable, "-c", script, str(count), str(size), dst)


def wait_ready(ns: str, dev: str, timeout: float = 15.0) -> None:
    """Wait until DEV in NS can send: its operstate is UP and its qdisc is no longer noop.

    A veth whose peer comes up gets its carrier at once, but the kernel attaches its real qdisc (and sets
    the operstate) later, in the linkwatch work, which runs up to a second later and later still on a busy
    machine; until then every frame it sends, the first ARP request included, is dropped by noop."""
    deadline = time.monotonic() + timeout
    while True:
        link = json.loads(sh("ip", "-j", "-n", ns, "link", "show", "dev", dev))[0]
        qdisc = sh("tc", "-n", ns, "qdisc", "show", "dev", dev)
        if link.get("operstate") == "UP" and qdisc and not qdisc.startswith("qdisc noop "):
            return
        assert time.monotonic() < deadline, f"{dev} in {ns} not ready after {timeout} s: {link}, {qdisc!r}"
        time.sleep(0.02)


def links(ns: str) -> list[Link]:
    from nslab.kernel.rtnl import Rtnl

    with Rtnl.open(netns=ns) as r:
        return r.links(with_addrs=True)


def real_ifconfig(ns: str, show_all: bool) -> str:
    assert IFCONFIG is not None
    return sh("ip", "netns", "exec", ns, IFCONFIG, *(["-a"] if show_all else []))


def _diff(real: str, mine: str) -> str:
    return "".join(difflib.unified_diff(real.splitlines(True), mine.splitlines(True), "ifconfig", "nslab"))


def _sort_inet6_runs(text: str) -> list[str]:
    """Lines, with each run of consecutive inet6 lines sorted (the only part whose order is random)."""
    out: list[str] = []
    run: list[str] = []
    for line in text.split("\n"):
        if line.startswith("        inet6 "):
            run.append(line)
            continue
        out += sorted(run)
        run = []
        out.append(line)
    return out + sorted(run)


def compare(ns: str, show_all: bool = True, tries: int = 20) -> str:
    """Assert nslab's output equals ifconfig's, line by line; returns ifconfig's output."""
    real = mine = plain = ""
    for _ in range(tries):
        before = real_ifconfig(ns, show_all)
        model = links(ns)
        order = parse_if_inet6(sh("ip", "netns", "exec", ns, "cat", "/proc/net/if_inet6"))
        after = real_ifconfig(ns, show_all)
        real = after
        mine = format_all(model, show_all=show_all, inet6_order=order)
        plain = format_all(model, show_all=show_all)
        if before == after and mine == real:
            break
        time.sleep(0.2)  # counters moved between the reads: wait for a quiet moment
    what = f"ifconfig{' -a' if show_all else ''} in {ns}"
    assert mine.split("\n") == real.split("\n"), f"{what}:\n" + _diff(real, mine)
    assert _sort_inet6_runs(plain) == _sort_inet6_runs(real), _diff(real, plain)
    return real


# ---------------------------------------------------------------------------------------------------


def test_fresh_namespace_prints_nothing_without_a(lab: Lab) -> None:
    """The seed post: a new namespace has only lo, down, so plain `ifconfig` prints nothing."""
    ns = lab.ns()
    assert real_ifconfig(ns, False) == ""
    assert format_all(links(ns)) == ""
    out = compare(ns, show_all=True)
    assert out.startswith("lo: flags=8<LOOPBACK>  mtu 65536\n")


def test_loopback_up_and_after_traffic(lab: Lab) -> None:
    ns = lab.ns()
    ip(ns, "link", "set", "lo", "up")
    out = compare(ns, show_all=False)
    assert out.startswith(
        "lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n        inet 127.0.0.1  netmask 255.0.0.0\n"
    )
    compare(ns, show_all=True)
    ping(ns, "127.0.0.1", count=3)
    out = compare(ns, show_all=False)
    assert "RX packets 6  " in out  # 3 requests + 3 replies, all through lo
    # Bigger traffic: KiB, then MiB in the brackets.
    ping(ns, "127.0.0.1", count=10, size=1400)
    assert "KiB)" in compare(ns, show_all=False)
    ping(ns, "127.0.0.1", count=40, size=60000)
    assert "MiB)" in compare(ns, show_all=False)


def test_veth_pair_addresses_mtu_and_one_end_down(lab: Lab) -> None:
    a, b = lab.ns(), lab.ns()
    for ns in (a, b):
        ip(ns, "link", "set", "lo", "up")
    ip(a, "link", "add", "va", "mtu", "9000", "type", "veth", "peer", "name", "vb", "netns", b)
    ip(b, "link", "set", "vb", "mtu", "9000")
    ip(a, "addr", "add", "10.77.0.1/24", "brd", "+", "dev", "va")
    ip(a, "addr", "add", "10.77.1.1/24", "dev", "va")  # second primary, no broadcast: not shown
    ip(a, "addr", "add", "10.77.0.9/24", "dev", "va", "label", "va:3")  # alias block
    ip(a, "addr", "add", "10.77.0.10/24", "dev", "va", "label", "va:12")
    for addr in ("fd77::1/64", "fd77::2/64", "2001:db8:77::1/48", "fe80::77/64"):
        ip(a, "addr", "add", addr, "dev", "va", "nodad")
    ip(b, "addr", "add", "10.77.0.2/24", "dev", "vb")  # no brd: ifconfig prints broadcast 0.0.0.0
    ip(b, "addr", "add", "fd77::ff/64", "dev", "vb", "nodad")
    ip(a, "link", "set", "va", "up")  # vb stays down: va is UP but not RUNNING
    # A frame sent while the peer is down is dropped and counted in TX dropped. Through the IP stack only
    # 6.18 counts it (6.1 drops it uncounted in the noop qdisc of a device without carrier), so it goes from
    # a packet socket that bypasses the qdisc: both kernels count that drop (send fails with ENOBUFS).
    send_frame = (
        "import socket\n"
        "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
        "s.setsockopt(263, 20, 1)  # SOL_PACKET, PACKET_QDISC_BYPASS\n"
        "s.bind(('va', 0))\n"
        "try:\n    s.send(b'\\xff' * 6 + b'\\x02' * 6 + b'\\x88\\xb5' + bytes(46))\n"
        "except OSError:\n    pass\n"
    )
    sh("ip", "netns", "exec", a, sys.executable, "-c", send_frame)
    out = compare(a, show_all=True)
    assert re.search(r"^va: .*?\n        TX errors 0  dropped [1-9]", out, re.S | re.M)
    assert "va: flags=4099<UP,BROADCAST,MULTICAST>  mtu 9000\n" in out
    assert "va:3: flags=4099<UP,BROADCAST,MULTICAST>  mtu 9000\n        inet 10.77.0.9  " in out
    assert out.index("va:3:") < out.index("va:12:")
    compare(a, show_all=False)
    out = compare(b, show_all=True)
    assert "broadcast 0.0.0.0" in out
    assert compare(b, show_all=False).startswith("lo:")
    # Both ends up, traffic between the two namespaces over the pair.
    ip(b, "link", "set", "vb", "up")
    wait_ready(a, "va")
    wait_ready(b, "vb")
    ping(a, "10.77.0.2", count=3)
    ping(b, "10.77.0.1", count=2, size=3000)  # fragments nothing at mtu 9000
    assert "va: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 9000" in compare(a)
    compare(b)


def test_bridge_tap_tun_macvlan(lab: Lab) -> None:
    a, b = lab.ns(), lab.ns()
    ip(a, "link", "add", "br0", "type", "bridge")
    ip(a, "tuntap", "add", "mode", "tap", "dev", "tap0")
    ip(a, "tuntap", "add", "mode", "tun", "dev", "tun0")
    ip(a, "addr", "add", "10.78.0.1", "peer", "10.78.0.2", "dev", "tun0")  # point-to-point: destination
    ip(a, "link", "add", "vx", "type", "veth", "peer", "name", "vy", "netns", b)
    ip(a, "link", "add", "link", "vx", "name", "mv0", "type", "macvlan", "mode", "bridge")
    ip(a, "link", "set", "tap0", "master", "br0")
    ip(a, "addr", "add", "10.78.1.1/24", "brd", "+", "dev", "br0")
    ip(a, "addr", "add", "10.78.2.1/24", "brd", "+", "dev", "mv0")
    out = compare(a, show_all=True)
    assert "        unspec 00-00-00-00-00-00-00-00-00-00-00-00-00-00-00-00  txqueuelen 500  (UNSPEC)\n" in out
    assert "tap0: flags=4098<BROADCAST,MULTICAST>  mtu 1500\n        ether " in out
    for dev in ("br0", "tap0", "tun0", "vx", "mv0"):
        ip(a, "link", "set", dev, "up")
    out = compare(a, show_all=True)
    assert "inet 10.78.0.1  netmask 255.255.255.255  destination 10.78.0.2\n" in out
    compare(a, show_all=False)


def test_flag_combinations_and_name_order(lab: Lab) -> None:
    a, b = lab.ns(), lab.ns()
    # ifindex order differs from name order: ifconfig sorts by name, numbers as numbers.
    for name in ("z9", "eth10", "eth2", "a1"):
        peer = f"p{name}"
        ip(a, "link", "add", name, "type", "veth", "peer", "name", peer, "netns", b)
    ip(a, "link", "set", "z9", "promisc", "on", "allmulticast", "on", "arp", "off", "up")
    ip(a, "link", "set", "eth10", "multicast", "off", "dynamic", "on")  # DYNAMIC: negative flags number
    ip(a, "link", "set", "eth2", "trailers", "off", "up")  # NOTRAILERS
    ip(a, "link", "set", "a1", "address", "02:00:00:00:00:a1", "txqueuelen", "17", "mtu", "1280")
    out = compare(a, show_all=True)
    names = [line.split(":")[0] for line in out.split("\n") if line and not line.startswith(" ")]
    assert names == ["a1", "eth2", "eth10", "lo", "z9"]
    assert "eth10: flags=-32766<BROADCAST,DYNAMIC>" in out
    assert "        ether 02:00:00:00:00:a1  txqueuelen 17  (Ethernet)\n" in out
    compare(a, show_all=False)


# ---- the CLI against net-tools: `nslab -n NS ifconfig ...` next to `ifconfig ...` in the same namespace -------
def settled_cli(cli: Any, ns: str, argv: list[str], tries: int = 20) -> tuple[str, str]:
    """(net-tools' output, nslab's) from a moment when net-tools printed the same before and after nslab ran
    (counters move with IPv6's own traffic); the last try's pair otherwise."""
    assert IFCONFIG is not None
    real = mine = ""
    for _ in range(tries):
        before = sh("ip", "netns", "exec", ns, IFCONFIG, *argv)
        res = cli("-n", ns, "ifconfig", *argv)
        assert res.rc == 0, res.err
        real, mine = sh("ip", "netns", "exec", ns, IFCONFIG, *argv), res.out
        if before == real and mine == real:
            break
        time.sleep(0.2)
    return real, mine


def test_cli_byte_for_byte_with_net_tools(netns_factory: Any, cli: Any) -> None:
    """Long and short (-s) views, all or UP only or one device, with an alias and five IPv6 addresses whose
    inet6 lines must come in /proc/net/if_inet6's order (the CLI reads it inside the namespace)."""
    ns = netns_factory().name
    ip(ns, "link", "set", "lo", "up")
    ip(ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    ip(ns, "addr", "add", "10.79.0.1/24", "brd", "+", "dev", "va")
    ip(ns, "addr", "add", "10.79.0.9/24", "dev", "va", "label", "va:1")
    for addr in ("fd79::1/64", "fd79::2/64", "2001:db8:79::1/48", "fe80::79/64", "fd00:79::1/64"):
        ip(ns, "addr", "add", addr, "dev", "va", "nodad")
    ip(ns, "link", "set", "va", "up")  # vb stays down: va UP without RUNNING, vb only with -a
    ip(ns, "link", "set", "vb", "promisc", "on", "allmulticast", "on", "arp", "off", "trailers", "off", "dynamic", "on")
    ping(ns, "127.0.0.1", count=2)
    for argv in ([], ["-a"], ["va"], ["-s"], ["-s", "-a"], ["-s", "va"], ["-a", "-s", "vb"]):
        real, mine = settled_cli(cli, ns, argv)
        assert mine == real, f"ifconfig {' '.join(argv)} in {ns}:\n" + _diff(real, mine)
    real, _ = settled_cli(cli, ns, ["-s", "-a"])
    assert real.split("\n")[0] == "Iface      MTU    RX-OK RX-ERR RX-DRP RX-OVR    TX-OK TX-ERR TX-DRP TX-OVR Flg"
    assert [line.split()[0] for line in real.split("\n")[1:] if line] == ["lo", "va", "va:1", "vb"]
    assert re.search(r"^va:1 +1500 +- no statistics available - +BMU$", real, re.M), real
    assert re.search(r"^lo +65536 +4 +0 +0 +0 +4 +0 +0 +0 +LRU$", real, re.M), real
    assert re.search(r"^vb .* ABMdPNO$", real, re.M), real
    long_real, _ = settled_cli(cli, ns, ["va"])
    inet6 = [line.split()[1] for line in long_real.split("\n") if line.startswith("        inet6 ")]
    kernel_order = [a for d, a in parse_if_inet6(sh("ip", "netns", "exec", ns, "cat", "/proc/net/if_inet6"))
                    if d == "va"]
    assert len(inet6) == 5 and inet6 == kernel_order


def test_cli_dev_up_down_as_net_tools_does(netns_factory: Any, cli: Any) -> None:
    """`nslab ifconfig v1 up|down` next to net-tools' `ifconfig v2 up|down` on a twin device: the same flags
    after each (short view and ip's own flags), nothing printed, and bad input refused."""
    assert IFCONFIG is not None
    ns = netns_factory().name
    for dev in ("v1", "v2"):
        ip(ns, "link", "add", dev, "type", "veth", "peer", "name", f"p{dev}")
        ip(ns, "link", "set", f"p{dev}", "up")

    def flags(dev: str) -> tuple[str, list[str]]:
        short = sh("ip", "netns", "exec", ns, IFCONFIG, "-s", dev).split("\n")[1].split()[-1]
        return short, sorted(json.loads(sh("ip", "-n", ns, "-j", "link", "show", dev))[0]["flags"])

    for state, want in (("up", "BMRU"), ("down", "BM"), ("up", "BMRU")):
        res = cli("-n", ns, "ifconfig", "v1", state)
        assert (res.rc, res.out, res.err) == (0, "", "")
        sh("ip", "netns", "exec", ns, IFCONFIG, "v2", state)
        assert wait_until(lambda w=want: flags("v1")[0] == w == flags("v2")[0]), (state, flags("v1"), flags("v2"))
        assert flags("v1") == flags("v2")
    res = cli("-n", ns, "--json", "ifconfig", "v1", "down")
    assert res.rc == 0 and json.loads(res.out)["ifname"] == "v1" and "UP" not in json.loads(res.out)["flags"]
    res = cli("-n", ns, "ifconfig", "nosuch", "up")
    assert res.rc != 0 and "nosuch" in res.err, res.err
    res = cli("-n", ns, "ifconfig", "v1", "sideways")
    assert res.rc == 2 and "'sideways'" in res.err and res.out == "", res.err


def wait_until(cond: Any, timeout: float = 5.0) -> bool:
    """Carrier (RUNNING) follows UP a moment later on veth."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())
