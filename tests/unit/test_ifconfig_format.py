"""nslab.ifconfig as a pure formatter: hand-built model records, no kernel, no root."""

from __future__ import annotations

import random

import pytest

from nslab.ifconfig import (
    flags_text,
    format_all,
    format_interface,
    human_bytes,
    inet6_scope,
    inet6_text,
    interface_names,
    nstrcmp,
    parse_if_inet6,
    scope_text,
)
from nslab.model import Address, Link, Stats, Stats64

IFF_UP, IFF_BROADCAST, IFF_LOOPBACK, IFF_POINTOPOINT = 0x1, 0x2, 0x8, 0x10
IFF_RUNNING, IFF_NOARP, IFF_MULTICAST, IFF_LOWER_UP = 0x40, 0x80, 0x1000, 0x10000
ETHER_UP = IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST | IFF_LOWER_UP  # 4163 as ifconfig shows it

SEED_LO = """\
lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536
        inet 127.0.0.1  netmask 255.0.0.0
        inet6 ::1  prefixlen 128  scopeid 0x10<host>
        loop  txqueuelen 1000  (Local Loopback)
        RX packets 12  bytes 720 (720.0 B)
        RX errors 0  dropped 0  overruns 0  frame 0
        TX packets 12  bytes 720 (720.0 B)
        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0

"""


def lo(up: bool = True, stats: Stats64 | None = None) -> Link:
    flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP if up else IFF_LOOPBACK
    return Link(
        ifindex=1, ifname="lo", flags=(), raw_flags=flags, mtu=65536, operstate="UNKNOWN",
        link_type="loopback", address="00:00:00:00:00:00", txqlen=1000,
        stats64=stats or Stats64(),
        addr_info=(
            Address("inet", "127.0.0.1", 8, "host", label="lo"),
            Address("inet6", "::1", 128, "host"),
        ) if up else (),
    )


def eth(name: str = "veth0", ifindex: int = 2, raw_flags: int = ETHER_UP, **kw: object) -> Link:
    args: dict[str, object] = dict(
        ifindex=ifindex, ifname=name, flags=(), raw_flags=raw_flags, mtu=1500, operstate="UP",
        link_type="ether", address="02:00:00:aa:bb:0c", txqlen=1000,
    )
    args.update(kw)
    return Link(**args)  # type: ignore[arg-type]


def lines(text: str) -> list[str]:
    return text.split("\n")


# ---------------------------------------------------------------------------------------------------
# The seed post


def test_seed_post_lo_block_exactly() -> None:
    stats = Stats64(rx=Stats(bytes=720, packets=12), tx=Stats(bytes=720, packets=12))
    assert format_interface(lo(stats=stats)) == SEED_LO
    assert format_all([lo(stats=stats)]) == SEED_LO
    assert format_all([lo(stats=stats)], show_all=True) == SEED_LO


def test_seed_post_fresh_namespace_is_empty_without_a() -> None:
    assert format_all([lo(up=False)]) == ""
    assert format_all([]) == ""
    out = format_all([lo(up=False)], show_all=True)
    assert lines(out)[:2] == [
        "lo: flags=8<LOOPBACK>  mtu 65536",
        "        loop  txqueuelen 1000  (Local Loopback)",
    ]
    assert out.endswith("collisions 0\n\n")


# ---------------------------------------------------------------------------------------------------
# human_bytes


def c_reference(rx: int) -> str:
    """ife_print_long's unit code, transliterated statement by statement (unsigned long long)."""
    mask = (1 << 64) - 1
    short_rx = (rx * 10) & mask
    ext = "B"
    if rx > 1152921504606846976:
        short_rx = rx // 115292150460684697
        ext = "EiB"
    elif rx > 1125899906842624:
        short_rx //= 1125899906842624
        ext = "PiB"
    elif rx > 1099511627776:
        short_rx //= 1099511627776
        ext = "TiB"
    elif rx > 1073741824:
        short_rx //= 1073741824
        ext = "GiB"
    elif rx > 1048576:
        short_rx //= 1048576
        ext = "MiB"
    elif rx > 1024:
        short_rx //= 1024
        ext = "KiB"
    return f"{short_rx // 10}.{short_rx % 10} {ext}"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0.0 B"),
        (1, "1.0 B"),
        (720, "720.0 B"),
        (999, "999.0 B"),
        (1000, "1000.0 B"),  # 1024 steps, not 1000
        (1023, "1023.0 B"),
        (1024, "1024.0 B"),  # a unit only when strictly greater
        (1025, "1.0 KiB"),
        (1126, "1.0 KiB"),  # 1.0996: truncated, not rounded
        (1127, "1.1 KiB"),
        (1536, "1.5 KiB"),
        (10239, "9.9 KiB"),
        (1048575, "1023.9 KiB"),
        (1048576, "1024.0 KiB"),
        (1048577, "1.0 MiB"),
        (4802240, "4.5 MiB"),
        (1073741824, "1024.0 MiB"),
        (1073741825, "1.0 GiB"),
        (1 << 40, "1024.0 GiB"),
        ((1 << 40) + 1, "1.0 TiB"),
        (1 << 50, "1024.0 TiB"),
        ((1 << 50) + 1, "1.0 PiB"),
        (1 << 60, "1024.0 PiB"),
        ((1 << 60) + 1, "1.0 EiB"),
        ((1 << 64) - 1, "16.0 EiB"),
    ],
)
def test_human_bytes_table(n: int, text: str) -> None:
    assert human_bytes(n) == text
    assert c_reference(n) == text


def test_human_bytes_every_boundary_and_samples_match_the_c_code() -> None:
    values = set(range(0, 5000))
    for shift in range(0, 64):
        for d in range(-3, 4):
            values.add(max(0, (1 << shift) + d))
            values.add(max(0, 10 * (1 << shift) + d))
    rnd = random.Random(7)
    values.update(rnd.randrange(1 << bits) for bits in range(1, 65) for _ in range(200))
    values.add((1 << 64) - 1)
    for n in sorted(values):
        if n < 1 << 64:
            assert human_bytes(n) == c_reference(n), n


def test_human_bytes_rejects_negative() -> None:
    with pytest.raises(ValueError):
        human_bytes(-1)


# ---------------------------------------------------------------------------------------------------
# Flags


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (0, "flags=0<"),  # C: "flags=0<>" then the last character cut
        (IFF_LOOPBACK, "flags=8<LOOPBACK>"),
        (IFF_UP | IFF_LOOPBACK | IFF_RUNNING, "flags=73<UP,LOOPBACK,RUNNING>"),
        (IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP, "flags=73<UP,LOOPBACK,RUNNING>"),  # short
        (ETHER_UP, "flags=4163<UP,BROADCAST,RUNNING,MULTICAST>"),
        (IFF_BROADCAST | IFF_MULTICAST, "flags=4098<BROADCAST,MULTICAST>"),
        (IFF_UP | IFF_BROADCAST | IFF_MULTICAST, "flags=4099<UP,BROADCAST,MULTICAST>"),
        (IFF_UP | IFF_POINTOPOINT | IFF_NOARP | IFF_MULTICAST, "flags=4241<UP,POINTOPOINT,NOARP,MULTICAST>"),
        (0x2000, "flags=8192"),  # PORTSEL has no name: the '<' is cut off
        (0x2000 | IFF_UP, "flags=8193<UP>"),
        (0x8002, "flags=-32766<BROADCAST,DYNAMIC>"),  # C short
        (
            0xFFFF,
            "flags=-1<UP,BROADCAST,DEBUG,LOOPBACK,POINTOPOINT,NOTRAILERS,RUNNING,NOARP,PROMISC,ALLMULTI,"
            "SLAVE,MASTER,MULTICAST,DYNAMIC>",
        ),
        (0x100 | 0x200 | 0x1 | 0x2, "flags=771<UP,BROADCAST,PROMISC,ALLMULTI>"),
        (0x400 | 0x800, "flags=3072<SLAVE,MASTER>"),
        (0x4 | 0x20, "flags=36<DEBUG,NOTRAILERS>"),
    ],
)
def test_flags_text(flags: int, text: str) -> None:
    assert flags_text(flags) == text


def test_portsel_prints_a_media_line() -> None:
    out = format_interface(eth(raw_flags=ETHER_UP | 0x2000 | 0x4000))
    assert "        media unknownautoselect\n" in out  # net-tools prints no space there
    assert "        media unknown\n" in format_interface(eth(raw_flags=ETHER_UP | 0x2000))


# ---------------------------------------------------------------------------------------------------
# Line shapes


def test_ethernet_block_line_by_line() -> None:
    link = eth(
        mtu=9000,
        addr_info=(
            Address("inet", "10.0.0.1", 24, "global", label="veth0", broadcast="10.0.0.255"),
            Address("inet", "10.0.1.1", 24, "global", label="veth0", broadcast="10.0.1.255"),
            Address("inet6", "fd00::1", 64, "global"),
            Address("inet6", "fe80::ff:fe00:1", 64, "link"),
        ),
        stats64=Stats64(
            rx=Stats(bytes=2048, packets=20, errors=1, dropped=2, missed_errors=3, fifo_errors=4,
                     length_errors=1, over_errors=2, crc_errors=3, frame_errors=4),
            tx=Stats(bytes=5 << 20, packets=30, errors=5, dropped=6, fifo_errors=7, collisions=8,
                     carrier_errors=1, aborted_errors=10, window_errors=100, heartbeat_errors=1000),
        ),
    )
    assert lines(format_interface(link)) == [
        "veth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 9000",
        "        inet 10.0.0.1  netmask 255.255.255.0  broadcast 10.0.0.255",
        "        inet6 fd00::1  prefixlen 64  scopeid 0x0<global>",
        "        inet6 fe80::ff:fe00:1  prefixlen 64  scopeid 0x20<link>",
        "        ether 02:00:00:aa:bb:0c  txqueuelen 1000  (Ethernet)",
        "        RX packets 20  bytes 2048 (2.0 KiB)",
        "        RX errors 1  dropped 5  overruns 4  frame 10",  # /proc/net/dev sums
        "        TX packets 30  bytes 5242880 (5.0 MiB)",
        "        TX errors 5  dropped 6 overruns 7  carrier 1111  collisions 8",
        "",
        "",
    ]


def test_inet_line_variants() -> None:
    # No broadcast address on a BROADCAST device: the kernel answers 0.0.0.0.
    out = format_interface(eth(addr_info=(Address("inet", "10.0.0.2", 24, "global", label="veth0"),)))
    assert "        inet 10.0.0.2  netmask 255.255.255.0  broadcast 0.0.0.0\n" in out
    # Point-to-point: destination is the peer; with no peer, the local address itself.
    ptp_flags = IFF_UP | IFF_POINTOPOINT | IFF_NOARP | IFF_MULTICAST
    tun = Link(ifindex=3, ifname="tun0", flags=(), raw_flags=ptp_flags, mtu=1500,
               operstate="UNKNOWN", link_type="none", txqlen=500,
               addr_info=(Address("inet", "10.7.0.1", 32, "global", address="10.7.0.2", label="tun0"),))
    assert lines(format_interface(tun))[:3] == [
        "tun0: flags=4241<UP,POINTOPOINT,NOARP,MULTICAST>  mtu 1500",
        "        inet 10.7.0.1  netmask 255.255.255.255  destination 10.7.0.2",
        "        unspec 00-00-00-00-00-00-00-00-00-00-00-00-00-00-00-00  txqueuelen 500  (UNSPEC)",
    ]
    tun2 = Link(ifindex=3, ifname="tun0", flags=(), raw_flags=IFF_POINTOPOINT, mtu=1500, operstate="DOWN",
                link_type="none", addr_info=(Address("inet", "10.7.0.1", 32, "global", label="tun0"),))
    assert "        inet 10.7.0.1  netmask 255.255.255.255  destination 10.7.0.1\n" in format_interface(tun2)
    # Neither flag: netmask only.
    plain = eth(raw_flags=IFF_UP, addr_info=(Address("inet", "192.168.1.1", 0, "global", label="veth0"),))
    assert "        inet 192.168.1.1  netmask 0.0.0.0\n" in format_interface(plain)


@pytest.mark.parametrize(
    ("plen", "mask"),
    [(0, "0.0.0.0"), (1, "128.0.0.0"), (8, "255.0.0.0"), (23, "255.255.254.0"), (31, "255.255.255.254"),
     (32, "255.255.255.255")],
)
def test_netmask(plen: int, mask: str) -> None:
    link = eth(raw_flags=IFF_UP, addr_info=(Address("inet", "10.1.2.3", plen, "global", label="veth0"),))
    assert f"  netmask {mask}\n" in format_interface(link)


def test_only_first_ipv4_address_with_the_device_label() -> None:
    link = eth(addr_info=(
        Address("inet", "10.0.0.9", 24, "global", label="veth0:1"),
        Address("inet", "10.0.0.1", 24, "global", label="veth0"),
        Address("inet", "10.0.0.2", 24, "global", label="veth0"),
    ))
    out = format_interface(link)
    assert "inet 10.0.0.1 " in out and "10.0.0.2" not in out and "10.0.0.9" not in out
    # Only alias-labelled addresses: no inet line on the device itself.
    only_alias = eth(addr_info=(Address("inet", "10.0.0.9", 24, "global", label="veth0:1"),))
    assert "        inet " not in format_interface(only_alias)


def test_no_ipv4_down_interface() -> None:
    link = eth(raw_flags=IFF_BROADCAST | IFF_MULTICAST)
    assert lines(format_interface(link))[:2] == [
        "veth0: flags=4098<BROADCAST,MULTICAST>  mtu 1500",
        "        ether 02:00:00:aa:bb:0c  txqueuelen 1000  (Ethernet)",
    ]
    assert format_all([link]) == ""
    assert format_all([link], show_all=True) == format_interface(link)


TAIL = "  txqueuelen 7  (UNSPEC)"


@pytest.mark.parametrize(
    ("link_type", "address", "line"),
    [
        ("ether", "02:00:00:aa:bb:0c", "        ether 02:00:00:aa:bb:0c  txqueuelen 7  (Ethernet)"),
        ("ether", None, "        ether 00:00:00:00:00:00  txqueuelen 7  (Ethernet)"),
        ("loopback", "00:00:00:00:00:00", "        loop  txqueuelen 7  (Local Loopback)"),
        ("none", None, "        unspec " + "-".join(["00"] * 16) + "  txqueuelen 7  (UNSPEC)"),
        ("gre", "0a:09:00:01", "        unspec 0A-09-00-01-" + "-".join(["00"] * 12) + TAIL),
        ("gre", "10.9.0.1", "        unspec 0A-09-00-01-" + "-".join(["00"] * 12) + TAIL),
        ("ip6gre", "fd00::1", "        unspec FD-" + "-".join(["00"] * 15) + "  txqueuelen 7  (UNSPEC)"),
        ("ipip", "0a:00:00:01", "        tunnel   txqueuelen 7  (IPIP Tunnel)"),
        ("sit", "0.0.0.0", "        sit  txqueuelen 7  (IPv6-in-IPv4)"),
        ("ppp", None, "        ppp  txqueuelen 7  (Point-to-Point Protocol)"),
        ("65535", None, "        unspec " + "-".join(["00"] * 16) + "  txqueuelen 7  (UNSPEC)"),
    ],
)
def test_hardware_line(link_type: str, address: str | None, line: str) -> None:
    link = eth(link_type=link_type, address=address, txqlen=7)
    assert lines(format_interface(link))[1] == line


# ---------------------------------------------------------------------------------------------------
# IPv6


@pytest.mark.parametrize(
    ("addr", "text", "scope"),
    [
        ("::1", "::1", "0x10<host>"),
        ("fe80::1", "fe80::1", "0x20<link>"),
        ("fec0::1", "fec0::1", "0x40<site>"),
        ("fd00::1", "fd00::1", "0x0<global>"),
        ("2001:db8::1", "2001:db8::1", "0x0<global>"),
        ("::1.2.3.4", "::1.2.3.4", "0x80<compat,global>"),  # glibc writes compat addresses dotted
        ("::ffff:1.2.3.4", "1.2.3.4", "0x0<global>"),  # net-tools cuts mapped ones to the IPv4 part
        ("1:0:0:1:0:0:0:1", "1:0:0:1::1", "0x0<global>"),  # longest run; first on a tie
        ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4", "0x0<global>"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7", "0x0<global>"),  # a single zero is not compressed
        ("fd00::", "fd00::", "0x0<global>"),
        ("ff02::1", "ff02::1", "0x20<link>"),
    ],
)
def test_inet6_text_and_scope(addr: str, text: str, scope: str) -> None:
    assert inet6_text(addr) == text
    assert scope_text(inet6_scope(addr)) == scope


def test_scope_text_without_known_bits_cuts_the_bracket() -> None:
    assert scope_text(0x100) == "0x100"
    assert scope_text(0x30) == "0x30<link,host>"


def test_inet6_order_model_by_default_kernel_listing_when_given() -> None:
    link = eth(addr_info=(
        Address("inet6", "2001:db8::1", 64, "global"),
        Address("inet6", "fd00::2", 64, "global"),
        Address("inet6", "fe80::1", 64, "link"),
    ))
    shown = [ln.split()[1] for ln in lines(format_interface(link)) if ln.startswith("        inet6 ")]
    assert shown == ["2001:db8::1", "fd00::2", "fe80::1"]
    proc = (
        "fe800000000000000000000000000001 02 40 20 80    veth0\n"
        "fd000000000000000000000000000002 03 40 00 80    other\n"
        "20010db8000000000000000000000001 02 40 00 80    veth0\n"
        "fd000000000000000000000000000002 02 40 00 80    veth0\n"
    )
    order = parse_if_inet6(proc)
    assert order[0] == ("veth0", "fe80::1")
    shown = [
        ln.split()[1]
        for ln in lines(format_interface(link, inet6_order=order))
        if ln.startswith("        inet6 ")
    ]
    assert shown == ["fe80::1", "2001:db8::1", "fd00::2"]
    # An address the listing does not have goes last.
    shown = [
        ln.split()[1]
        for ln in lines(format_interface(link, inet6_order=order[:1]))
        if ln.startswith("        inet6 ")
    ]
    assert shown == ["fe80::1", "2001:db8::1", "fd00::2"]


# ---------------------------------------------------------------------------------------------------
# The list: order, -a, aliases


def test_nstrcmp_matches_net_tools_own_test_table() -> None:
    table = [
        ("eth1", "eth1", 0), ("eth0:1", "eth0:1", 0), ("lan", "lan", 0), ("100", "100", 0), ("", "", 0),
        (":", ":", 0), ("a:b:c", "a:b:c", 0), ("a:", "a:", 0), (":a", ":a", 0),
        ("a", "aa", -1), ("eth0", "eth1", -1), ("eth1", "eth20", -1), ("eth20", "eth100", -1),
        ("eth1", "eth13", -1), ("eth", "eth2", -1), ("eth0:1", "eth0:2", -1), ("eth1:10", "eth13:10", -1),
        ("eth1:1", "eth1:13", -1), ("a", "a:", -1),
        ("aa", "a", 1), ("eth2", "eth1", 1), ("eth13", "eth1", 1), ("eth2", "eth", 1),
        ("eth2:10", "eth2:1", 1),
        ("eth2:5", "eth2:4", 1), ("eth3:2", "eth2:3", 1), ("eth13:1", "eth1:0", 1), ("a:", "a", 1),
        ("a1b12", "a1b2", 1),
        ("eth1", "eth01", 1), ("eth01", "eth1", -1), ("eth1:1", "eth01:1", 1), ("eth01:1", "eth1:1", -1),
        ("eth1:1", "eth01:01", 1), ("eth1:01", "eth01:1", 1), ("eth01:1", "eth1:01", -1),
        ("eth01:01", "eth1:1", -1),
    ]
    for a, b, want in table:
        got = nstrcmp(a, b)
        assert (got > 0) - (got < 0) == want, (a, b)


def test_order_is_by_name_not_ifindex_and_aliases_follow_their_device() -> None:
    links = [
        lo(),
        eth("z9", 2),
        eth("eth10", 3),
        eth("eth2", 4, addr_info=(
            Address("inet", "10.0.0.1", 24, "global", label="eth2"),
            Address("inet", "10.0.0.12", 24, "global", label="eth2:12"),
            Address("inet", "10.0.0.3", 24, "global", label="eth2:3"),
        )),
        eth("a1", 5),
    ]
    assert interface_names(links) == ["a1", "eth2", "eth2:3", "eth2:12", "eth10", "lo", "z9"]
    heads = [ln.split(": ")[0] for ln in lines(format_all(links, show_all=True)) if ln and ln[0] != " "]
    assert heads == ["a1", "eth2", "eth2:3", "eth2:12", "eth10", "lo", "z9"]


def test_alias_block_shape() -> None:
    link = eth("eth2", 4, addr_info=(
        Address("inet", "10.0.0.1", 24, "global", label="eth2", broadcast="10.0.0.255"),
        Address("inet", "10.0.0.3", 24, "global", label="eth2:3"),
        Address("inet6", "fd00::1", 64, "global"),
    ), stats64=Stats64(rx=Stats(packets=5, bytes=500)))
    out = format_all([link])
    alias = out[out.index("eth2:3:"):]
    assert alias == (
        "eth2:3: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n"
        "        inet 10.0.0.3  netmask 255.255.255.0  broadcast 0.0.0.0\n"
        "        ether 02:00:00:aa:bb:0c  txqueuelen 1000  (Ethernet)\n"
        "\n"
    )
    # The alias follows its device's UP flag.
    down = eth("eth2", 4, raw_flags=IFF_BROADCAST, addr_info=link.addr_info)
    assert format_all([down]) == ""
    assert format_all([down], show_all=True).count(": flags=") == 2


def test_label_without_a_device_ends_the_listing_like_ifconfig() -> None:
    bogus = Address("inet", "10.0.0.1", 24, "global", label="bogus")
    links = [eth("a1", 2, addr_info=(bogus,)), eth("c3", 3)]
    assert interface_names(links) == ["a1", "bogus", "c3"]
    heads = [ln.split(": ")[0] for ln in lines(format_all(links)) if ln and ln[0] != " "]
    assert heads == ["a1"]


def test_show_all_filters_on_up_only() -> None:
    up_not_running = eth("b", 3, raw_flags=IFF_UP | IFF_BROADCAST | IFF_MULTICAST)
    down = eth("c", 4, raw_flags=IFF_BROADCAST | IFF_MULTICAST)
    out = format_all([lo(), up_not_running, down])
    assert [ln.split(": ")[0] for ln in lines(out) if ln and ln[0] != " "] == ["b", "lo"]
    out = format_all([lo(), up_not_running, down], show_all=True)
    assert [ln.split(": ")[0] for ln in lines(out) if ln and ln[0] != " "] == ["b", "c", "lo"]
    assert out == "".join(format_interface(x) for x in (up_not_running, down, lo()))


# ---------------------------------------------------------------------------------------------------
# ifconfig -s (ife_print_short)

SHORT_HEAD = "Iface      MTU    RX-OK RX-ERR RX-DRP RX-OVR    TX-OK TX-ERR TX-DRP TX-OVR Flg\n"


def test_short_view_columns_and_flag_letters() -> None:
    stats = Stats64(rx=Stats(packets=123456789, errors=7, dropped=2, missed_errors=1, fifo_errors=4),
                    tx=Stats(packets=5, errors=1, dropped=9, fifo_errors=3))
    links = [
        lo(stats=Stats64(rx=Stats(packets=4), tx=Stats(packets=4))),
        eth("veth0", 2, stats64=stats, addr_info=(Address("inet", "10.0.0.1", 24, "global", label="veth0"),
                                                   Address("inet", "10.0.0.9", 24, "global", label="veth0:1"))),
        eth("averyveryverylongname", 3, raw_flags=0),
        eth("odd", 4, raw_flags=0x8000 | 0x200 | 0x100 | 0x80 | 0x20 | 0x10 | 0x4 | 0x800 | 0x400 | 0x1),
    ]
    out = format_all(links, show_all=True, short=True)
    assert out == SHORT_HEAD + (
        "averyveryverylo  1500        0      0      0 0             0      0      0      0 [NO FLAGS]\n"
        "lo              65536        4      0      0 0             4      0      0      0 LRU\n"
        "odd              1500        0      0      0 0             0      0      0      0 ADdPNOPsmU\n"
        "veth0            1500 123456789      7      3 4             5      1      9      3 BMRU\n"
        "veth0:1          1500      - no statistics available -                        BMRU\n"
    )
    # without -a only the UP ones, the header always
    assert format_all(links, short=True) == SHORT_HEAD + "".join(
        line + "\n" for line in out.split("\n")[2:] if line and "[NO FLAGS]" not in line)
    assert format_all([], short=True) == SHORT_HEAD
    assert format_interface(links[0], short=True) == SHORT_HEAD + out.split("\n")[2] + "\n"
