"""net-tools `ifconfig` output, byte for byte, from nslab's model records.

A pure formatter: no system calls. It reproduces net-tools 2.10 `lib/interface.c:ife_print_long` (and the
list handling of `ifconfig` / `ifconfig -a`) for the state described by `nslab.model.Link` records, e.g. those
`nslab.kernel.rtnl.Rtnl.links(with_addrs=True)` returns.

What net-tools does, and so what this module does:

* Interfaces come from /proc/net/dev (every device) plus SIOCGIFCONF (every IPv4 address label, which adds
  alias entries such as ``eth0:1``). The list is kept sorted by net-tools' `nstrcmp` (names compared with
  their trailing number as a number, then the ``:N`` alias suffix) -- **not** by ifindex. `format_all`
  builds the list in the same arrival order (devices by ifindex, then labels) with the same insertion.
* Without ``-a`` only interfaces with IFF_UP are printed (``show_all=False``); RUNNING does not matter.
* ``flags=N<...>``: N is the low 16 bits of the device flags as a C ``short`` (IFF_DYNAMIC makes it
  negative); names in net-tools' order: UP BROADCAST DEBUG LOOPBACK POINTOPOINT NOTRAILERS RUNNING NOARP
  PROMISC ALLMULTI SLAVE MASTER MULTICAST DYNAMIC. With no known bit the ``<`` is cut off (``flags=0<``
  for 0, ``flags=8192`` for PORTSEL alone), as the C code does.
* ``inet``: only the first IPv4 address (in the kernel's ifa_list order, which is netlink dump order) whose
  label equals the interface name (SIOCGIFADDR). ``broadcast`` is printed when the device has
  IFF_BROADCAST (``0.0.0.0`` when the address has none), ``destination`` (the peer) when IFF_POINTOPOINT.
* ``inet6``: one line per address of the device, from /proc/net/if_inet6. The scope id is the kernel's
  ``ipv6_addr_scope()`` of the address (0x10 host, 0x20 link, 0x40 site, 0x80 compat, 0 global), which is
  derived from the address itself here. **Order**: the kernel lists /proc/net/if_inet6 by a hash of the
  address mixed with a per-namespace random secret (``net_hash_mix``), so the order is not a property of
  the model. By default the addresses are printed in model (netlink) order: larger scope first, newest
  first within a scope. Pass ``inet6_order`` (see `parse_if_inet6`) to reproduce a given kernel listing:
  `nslab ifconfig` reads the namespace's own /proc/net/if_inet6 and does.
* The hardware line: ``ether MAC`` (Ethernet, also tap/veth/bridge/macvlan), ``loop`` (Local Loopback),
  ``tunnel`` (IPIP Tunnel), ``sit`` (IPv6-in-IPv4), ``ppp`` (Point-to-Point Protocol), and for every other
  type ``unspec`` with 16 dash-separated upper-case bytes (the first 8 from the device address, then
  zeros), titled UNSPEC -- tun devices (type none), gre, wireguard, ... Then ``txqueuelen``.
* Counters are /proc/net/dev's columns, which the kernel (net/core/net-procfs.c) sums:
  RX dropped = rx_dropped + rx_missed_errors, overruns = rx_fifo_errors,
  frame = rx_length_errors + rx_over_errors + rx_crc_errors + rx_frame_errors,
  TX carrier = tx_carrier_errors + tx_aborted_errors + tx_window_errors + tx_heartbeat_errors.
  Alias entries have no /proc/net/dev line and so no counters and no inet6 lines.
* Byte counts in brackets use 1024 steps and IEC names (B, KiB, MiB, GiB, TiB, PiB, EiB), see `human_bytes`.

``ifconfig -s`` (`short=True`) is ife_print_short: the header line, then per interface the name in 15
columns, the mtu in 5, RX-OK RX-ERR RX-DRP RX-OVR and TX-OK TX-ERR TX-DRP TX-OVR (/proc/net/dev's packets,
errs, drop, fifo, as above; RX-OVR left-aligned, as the C format has it), and one letter per flag in its order
(A B D L M d P N O P s m R U; ``[NO FLAGS]`` for none). An alias has no statistics: ``- no statistics
available -`` in their place.

Not reproduced (not in the model): the ``device interrupt/base/memory/dma`` line of physical NICs, the
SLIP ``outfill/keepalive`` and ``RX compressed`` lines, and the media port name (assumed ``unknown``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from nslab.model import Address, Link, Stats

__all__ = [
    "SHORT_HEADER",
    "format_all",
    "format_interface",
    "human_bytes",
    "nstrcmp",
    "parse_if_inet6",
]

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_DEBUG = 0x4
IFF_LOOPBACK = 0x8
IFF_POINTOPOINT = 0x10
IFF_NOTRAILERS = 0x20
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
IFF_MASTER = 0x400
IFF_SLAVE = 0x800
IFF_MULTICAST = 0x1000
IFF_PORTSEL = 0x2000
IFF_AUTOMEDIA = 0x4000
IFF_DYNAMIC = 0x8000

# ife_print_long's order (not the bit order).
_FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (IFF_UP, "UP"),
    (IFF_BROADCAST, "BROADCAST"),
    (IFF_DEBUG, "DEBUG"),
    (IFF_LOOPBACK, "LOOPBACK"),
    (IFF_POINTOPOINT, "POINTOPOINT"),
    (IFF_NOTRAILERS, "NOTRAILERS"),
    (IFF_RUNNING, "RUNNING"),
    (IFF_NOARP, "NOARP"),
    (IFF_PROMISC, "PROMISC"),
    (IFF_ALLMULTI, "ALLMULTI"),
    (IFF_SLAVE, "SLAVE"),
    (IFF_MASTER, "MASTER"),
    (IFF_MULTICAST, "MULTICAST"),
    (IFF_DYNAMIC, "DYNAMIC"),
)

# IPv6 scope bits as /proc/net/if_inet6 prints them (include/net/ipv6.h IPV6_ADDR_*).
IPV6_ADDR_LOOPBACK = 0x10
IPV6_ADDR_LINKLOCAL = 0x20
IPV6_ADDR_SITELOCAL = 0x40
IPV6_ADDR_COMPATV4 = 0x80

_U64 = (1 << 64) - 1
_INDENT = "        "

# ---------------------------------------------------------------------------------------------------
# Byte counts


def human_bytes(n: int) -> str:
    """The bracketed size after ``bytes N`` in ifconfig's RX/TX lines, e.g. ``720.0 B``, ``1.2 KiB``.

    net-tools 2.10 ife_print_long: steps of 1024 with IEC names; a unit is used only when the count is
    strictly greater than it (1024 is ``1024.0 B``, 1025 is ``1.0 KiB``); one decimal, truncated, not
    rounded. EiB divides by 2**60 // 10 (the C code does), the other units multiply by ten first.
    Counters are unsigned 64-bit, as in the kernel and the C code.
    """
    if n < 0:
        raise ValueError(f"byte count must not be negative: {n}")
    n &= _U64
    short = (n * 10) & _U64
    unit = "B"
    if n > 1 << 60:
        short = n // 115292150460684697
        unit = "EiB"
    else:
        for shift, name in ((50, "PiB"), (40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
            if n > 1 << shift:
                short //= 1 << shift
                unit = name
                break
    return f"{short // 10}.{short % 10} {unit}"


# ---------------------------------------------------------------------------------------------------
# Flags


def _as_short(flags: int) -> int:
    """SIOCGIFFLAGS fills a C short: the low 16 bits, signed."""
    v = flags & 0xFFFF
    return v - 0x10000 if v & 0x8000 else v


def flags_text(raw_flags: int) -> str:
    """``flags=73<UP,LOOPBACK,RUNNING>`` for the given IFF_* bits, including net-tools' quirks."""
    f = _as_short(raw_flags)
    s = f"flags={f}<"
    if f == 0:
        s += ">"
    s += "".join(name + "," for bit, name in _FLAG_NAMES if f & bit)
    return s[:-1] + ">" if s.endswith(",") else s[:-1]


# ---------------------------------------------------------------------------------------------------
# Addresses


def _netmask(prefixlen: int) -> str:
    return str(ipaddress.IPv4Address((_U64 << (32 - prefixlen)) & 0xFFFFFFFF if prefixlen else 0))


def inet6_text(addr: str) -> str:
    """The text net-tools prints for an IPv6 address: glibc inet_ntop, then v4-mapped cut to the IPv4 part.

    glibc differs from Python's `ipaddress` for ::a.b.c.d (compat) and ::ffff:a.b.c.d (mapped), which it
    writes with a dotted tail; net-tools (fix_v4_address) then prints a mapped address as a.b.c.d.
    """
    packed = ipaddress.IPv6Address(addr).packed
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    out = ""
    for i, w in enumerate(words):
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out += ":"
            continue
        if i != 0:
            out += ":"
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out += ".".join(str(b) for b in packed[12:])
            break
        out += f"{w:x}"
    else:
        if best_base != -1 and best_base + best_len == 8:
            out += ":"
    if packed[:12] == b"\0" * 10 + b"\xff\xff" and "." in out:
        out = out[out.rindex(":") + 1 :]
    return out


def inet6_scope(addr: str) -> int:
    """The kernel's ipv6_addr_scope() of an address: what /proc/net/if_inet6 shows in its scope column."""
    packed = ipaddress.IPv6Address(addr).packed
    st = int.from_bytes(packed[:4], "big")
    if st & 0xE0000000 not in (0, 0xE0000000):
        return 0  # global unicast
    if st & 0xFF000000 == 0xFF000000:
        mc_scope = (st >> 16) & 0xF
        return {1: IPV6_ADDR_LOOPBACK, 2: IPV6_ADDR_LINKLOCAL, 5: IPV6_ADDR_SITELOCAL}.get(mc_scope, 0)
    if st & 0xFFC00000 == 0xFE800000:
        return IPV6_ADDR_LINKLOCAL
    if st & 0xFFC00000 == 0xFEC00000:
        return IPV6_ADDR_SITELOCAL
    if packed[:8] == b"\0" * 8 and packed[8:12] == b"\0" * 4:
        low = int.from_bytes(packed[12:], "big")
        if low == 0:
            return 0
        return IPV6_ADDR_LOOPBACK if low == 1 else IPV6_ADDR_COMPATV4
    return 0


def scope_text(scope: int) -> str:
    """``0x10<host>``, ``0x20<link>``, ``0x0<global>``, ``0x80<compat,global>``."""
    s = f"0x{scope:x}<"
    if scope & IPV6_ADDR_COMPATV4:
        s += "compat,"
        scope -= IPV6_ADDR_COMPATV4
    if scope == 0:
        s += "global,"
    if scope & IPV6_ADDR_LINKLOCAL:
        s += "link,"
    if scope & IPV6_ADDR_SITELOCAL:
        s += "site,"
    if scope & IPV6_ADDR_LOOPBACK:
        s += "host,"
    return s[:-1] + ">" if s.endswith(",") else s[:-1]


def parse_if_inet6(text: str) -> list[tuple[str, str]]:
    """(device, address) pairs from the contents of /proc/net/if_inet6, in the kernel's order.

    Feed the result to `format_all(..., inet6_order=...)` to print inet6 lines in the order that file has.
    """
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6 or len(parts[0]) != 32:
            continue
        out.append((parts[5], str(ipaddress.IPv6Address(bytes.fromhex(parts[0])))))
    return out


# ---------------------------------------------------------------------------------------------------
# Hardware line


@dataclass(frozen=True)
class _HwType:
    name: str
    title: str
    printer: Callable[[bytes], str] | None


def _pr_ether(hw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in hw[:6])


def _pr_unspec(hw: bytes) -> str:
    return "-".join(f"{b:02X}" for b in hw[:16])


def _pr_tunnel(_hw: bytes) -> str:
    return ""


_ETHER = _HwType("ether", "Ethernet", _pr_ether)
_UNSPEC = _HwType("unspec", "UNSPEC", _pr_unspec)
# Keyed by iproute2's link_type names (and ARPHRD numbers as text, which nslab uses for unnamed types).
_HWTYPES: dict[str, _HwType] = {
    "ether": _ETHER,
    "1": _ETHER,
    "loopback": _HwType("loop", "Local Loopback", None),
    "772": _HwType("loop", "Local Loopback", None),
    "ipip": _HwType("tunnel", "IPIP Tunnel", _pr_tunnel),
    "768": _HwType("tunnel", "IPIP Tunnel", _pr_tunnel),
    "sit": _HwType("sit", "IPv6-in-IPv4", None),
    "776": _HwType("sit", "IPv6-in-IPv4", None),
    "ppp": _HwType("ppp", "Point-to-Point Protocol", None),
    "512": _HwType("ppp", "Point-to-Point Protocol", None),
}


def _hw_bytes(address: str | None) -> bytes:
    """struct interface.hwaddr: 8 bytes of SIOCGIFHWADDR's sa_data, zero-filled to 32."""
    raw = b""
    if address:
        try:
            if ":" in address and all(len(p) <= 2 for p in address.split(":")):
                raw = bytes(int(p or "0", 16) for p in address.split(":"))
            else:
                raw = ipaddress.ip_address(address).packed
        except ValueError:
            raw = b""
    return raw[:8].ljust(32, b"\0")


def _hw_line(link: Link) -> str:
    hw = _HWTYPES.get(link.link_type, _UNSPEC)
    if hw.printer is not None:
        line = f"{_INDENT}{hw.name} {hw.printer(_hw_bytes(link.address))}"
    else:
        line = f"{_INDENT}{hw.name}"
    return f"{line}  txqueuelen {link.txqlen}  ({hw.title})"


# ---------------------------------------------------------------------------------------------------
# Blocks


def _first_inet(link: Link, label: str) -> Address | None:
    for a in link.addr_info:
        if a.family == "inet" and (a.label or link.ifname) == label:
            return a
    return None


def _inet_line(link: Link, a: Address) -> str:
    f = _as_short(link.raw_flags)
    line = f"{_INDENT}inet {a.local}  netmask {_netmask(a.prefixlen)}"
    if f & IFF_BROADCAST:
        line += f"  broadcast {a.broadcast or '0.0.0.0'}"
    if f & IFF_POINTOPOINT:
        line += f"  destination {a.address or a.local}"
    return line


def _inet6_addrs(link: Link, order: Sequence[tuple[str, str]] | None) -> list[Address]:
    addrs = [a for a in link.addr_info if a.family == "inet6"]
    if order is None:
        return addrs
    rank: dict[str, int] = {}
    for i, (dev, addr) in enumerate(order):
        if dev == link.ifname:
            rank.setdefault(str(ipaddress.IPv6Address(addr)), i)
    # Unknown addresses after the known ones, in model order (sorted() is stable).
    return sorted(addrs, key=lambda a: rank.get(str(ipaddress.IPv6Address(a.local)), len(order)))


def _stats_lines(rx: Stats, tx: Stats) -> list[str]:
    rx_drop = rx.dropped + rx.missed_errors
    rx_frame = rx.length_errors + rx.over_errors + rx.crc_errors + rx.frame_errors
    tx_carrier = tx.carrier_errors + tx.aborted_errors + tx.window_errors + tx.heartbeat_errors
    return [
        f"{_INDENT}RX packets {rx.packets}  bytes {rx.bytes} ({human_bytes(rx.bytes)})",
        f"{_INDENT}RX errors {rx.errors}  dropped {rx_drop}  overruns {rx.fifo_errors}  frame {rx_frame}",
        f"{_INDENT}TX packets {tx.packets}  bytes {tx.bytes} ({human_bytes(tx.bytes)})",
        f"{_INDENT}TX errors {tx.errors}  dropped {tx.dropped} overruns {tx.fifo_errors}"
        f"  carrier {tx_carrier}  collisions {tx.collisions}",
    ]


def _block(name: str, link: Link, *, alias: bool, inet6_order: Sequence[tuple[str, str]] | None) -> str:
    f = _as_short(link.raw_flags)
    lines = [f"{name}: {flags_text(link.raw_flags)}  mtu {link.mtu}"]
    a = _first_inet(link, name)
    if a is not None:
        lines.append(_inet_line(link, a))
    if not alias:
        for a6 in _inet6_addrs(link, inet6_order):
            scope = scope_text(inet6_scope(a6.local))
            lines.append(f"{_INDENT}inet6 {inet6_text(a6.local)}  prefixlen {a6.prefixlen}  scopeid {scope}")
    lines.append(_hw_line(link))
    if f & IFF_PORTSEL:
        lines.append(f"{_INDENT}media unknown" + ("autoselect" if f & IFF_AUTOMEDIA else ""))
    if not alias:
        lines += _stats_lines(link.stats64.rx, link.stats64.tx)
    return "\n".join(lines) + "\n\n"


SHORT_HEADER = "Iface      MTU    RX-OK RX-ERR RX-DRP RX-OVR    TX-OK TX-ERR TX-DRP TX-OVR Flg\n"

# ife_print_short's letters, in its order (POINTOPOINT is a second P, as in the C code).
_SHORT_FLAGS: tuple[tuple[int, str], ...] = (
    (IFF_ALLMULTI, "A"), (IFF_BROADCAST, "B"), (IFF_DEBUG, "D"), (IFF_LOOPBACK, "L"), (IFF_MULTICAST, "M"),
    (IFF_DYNAMIC, "d"), (IFF_PROMISC, "P"), (IFF_NOTRAILERS, "N"), (IFF_NOARP, "O"), (IFF_POINTOPOINT, "P"),
    (IFF_SLAVE, "s"), (IFF_MASTER, "m"), (IFF_RUNNING, "R"), (IFF_UP, "U"),
)


def _short_line(name: str, link: Link, *, alias: bool) -> str:
    f = _as_short(link.raw_flags)
    line = f"{name[:15]:<15} {link.mtu:5d} "
    if alias:
        line += f"{'     - no statistics available -':<56}"
    else:
        rx, tx = link.stats64.rx, link.stats64.tx
        line += (f"{rx.packets:8d} {rx.errors:6d} {rx.dropped + rx.missed_errors:6d} {rx.fifo_errors:<6d} "
                 f"{tx.packets:8d} {tx.errors:6d} {tx.dropped:6d} {tx.fifo_errors:6d} ")
    if f == 0:
        line += "[NO FLAGS]"
    return line + "".join(ch for bit, ch in _SHORT_FLAGS if f & bit) + "\n"


def format_interface(link: Link, *, inet6_order: Sequence[tuple[str, str]] | None = None,
                     short: bool = False) -> str:
    """One device's block as `ifconfig NAME` prints it, ending with the blank line ifconfig prints
    (`short`: `ifconfig -s NAME`, the header and the device's line).

    `inet6_order`: optional (device, address) pairs in /proc/net/if_inet6 order (see `parse_if_inet6`);
    without it inet6 lines follow the model's order.
    """
    if short:
        return SHORT_HEADER + _short_line(link.ifname, link, alias=False)
    return _block(link.ifname, link, alias=False, inet6_order=inet6_order)


# ---------------------------------------------------------------------------------------------------
# The interface list


def _cutalias(name: bytes) -> tuple[bytes, bytes | None]:
    digit = False
    for pos in range(len(name), 0, -1):
        c = name[pos - 1 : pos]
        if c == b":" and digit:
            return name[: pos - 1], name[pos:]
        if not c.isdigit():
            break
        digit = True
    return name, None


def _rindex_nondigit(name: bytes) -> int:
    for pos in range(len(name), 0, -1):
        if not name[pos - 1 : pos].isdigit():
            return pos
    return 0


def _atoi(s: bytes) -> int:
    n = 0
    for c in s:
        if not 0x30 <= c <= 0x39:
            break
        n = n * 10 + c - 0x30
    return n


def _cmp(x: bytes, y: bytes) -> int:
    return (x > y) - (x < y)


def nstrcmp(a_name: str, b_name: str) -> int:
    """net-tools lib/nstrcmp.c: strcmp that orders eth2 < eth10 and eth0 < eth0:1 < eth0:2 < eth1."""
    a, aalias = _cutalias(a_name.encode())
    b, balias = _cutalias(b_name.encode())
    aindex, bindex = _rindex_nondigit(a), _rindex_nondigit(b)
    complen = min(aindex, bindex)
    res = _cmp(a[:complen], b[:complen])
    if res:
        return res
    if aindex != bindex:
        return 1 if aindex > bindex else -1
    av, bv = _atoi(a[aindex:]), _atoi(b[bindex:])
    if av != bv:
        return -1 if av < bv else 1
    res = _cmp(a, b)
    if res:
        return res
    av = _atoi(aalias) if aalias is not None else -1
    bv = _atoi(balias) if balias is not None else -1
    if av != bv:
        return -1 if av < bv else 1
    if aalias is not None and balias is not None:
        return _cmp(aalias, balias)
    return 0


def _cache_add(names: list[str], name: str) -> None:
    """if_cache_add: walk back from the tail to the first smaller name, insert after it (no duplicates)."""
    i = len(names) - 1
    while i >= 0:
        n = nstrcmp(names[i], name)
        if n == 0:
            return
        if n < 0:
            break
        i -= 1
    names.insert(i + 1, name)


def interface_names(links: Iterable[Link]) -> list[str]:
    """The names `ifconfig -a` walks, in its order: devices and IPv4 alias labels, sorted by `nstrcmp`."""
    by_index = sorted(links, key=lambda lk: lk.ifindex)
    names: list[str] = []
    for lk in by_index:  # /proc/net/dev
        _cache_add(names, lk.ifname)
    for lk in by_index:  # SIOCGIFCONF: one entry per IPv4 address, by label
        for a in lk.addr_info:
            if a.family == "inet":
                _cache_add(names, a.label or lk.ifname)
    return names


def format_all(
    links: Sequence[Link],
    show_all: bool = False,
    *,
    inet6_order: Sequence[tuple[str, str]] | None = None,
    short: bool = False,
) -> str:
    """What `ifconfig` (show_all=False: interfaces with IFF_UP only) or `ifconfig -a` prints
    (`short`: `ifconfig -s [-a]`, the header and one line per interface).

    Order is net-tools' name order (`nstrcmp`), not ifindex. An IPv4 address whose label is not the
    device name (``eth0:1``) gets its own block as ifconfig prints it: the device's flags, mtu and
    hardware line, that address, no inet6 lines and no counters. As in net-tools, a label whose part
    before the first ``:`` names no device ends the listing (ifconfig reports an error there and stops).
    """
    by_name = {lk.ifname: lk for lk in links}
    out: list[str] = [SHORT_HEADER] if short else []
    for name in interface_names(links):
        link = by_name.get(name)
        alias = link is None
        if link is None:
            link = by_name.get(name.split(":", 1)[0])
            if link is None:
                break
        if _as_short(link.raw_flags) & IFF_UP or show_all:
            out.append(_short_line(name, link, alias=alias) if short
                       else _block(name, link, alias=alias, inet6_order=inet6_order))
    return "".join(out)
