"""The Python API for one network namespace: `with Namespace.create("ns1") as ns: ns.link("lo").up()`."""

from __future__ import annotations

import builtins
import contextlib
import os
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

from .errors import NotFoundError, NslabError, UsageError
from .kernel import linkkinds as _kinds
from .kernel import netns as _netns
from .kernel import procs as _procs
from .kernel.rtnl import Request, Rtnl, parse_mac
from .kernel.spawn import ParkedThread, finish
from .model import Address, Link, Route
from .names import check_netns_name

_FAMILIES = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}


class Namespace:
    """A named network namespace in /run/netns (iproute2-compatible).

    `Namespace.create` makes one and, used as a context manager, deletes it (and kills what runs in it)
    on exit. `Namespace.open` attaches to an existing one and never deletes it on exit.
    `Namespace.root()` stands for the namespace nslab itself runs in.
    """

    def __init__(self, name: str | None, owned: bool = False) -> None:
        self.name = name
        self.owned = owned
        self._rtnl: Rtnl | None = None
        self._parked: ParkedThread | None = None

    # ---- life cycle --------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str) -> Namespace:
        check_netns_name(name)
        sock = _netns.create(name, then=_open_netlink)
        ns = cls(name, owned=True)
        assert sock is not None
        ns._rtnl = Rtnl(sock, name)
        return ns

    @classmethod
    def open(cls, name: str) -> Namespace:
        if not _netns.exists(check_netns_name(name)):
            raise NotFoundError(
                f"namespace {name!r} does not exist",
                f"create it with 'nslab ns add {name}', or see 'nslab ns list'",
            )
        return cls(name)

    @classmethod
    def root(cls) -> Namespace:
        return cls(None)

    @staticmethod
    def list() -> list[str]:
        return _netns.list_names()

    def close(self) -> None:
        """Release sockets and threads that point into the namespace (they keep it alive)."""
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None
        if self._parked is not None:
            self._parked.close()
            self._parked = None

    def delete(self, kill: bool = True) -> None:
        """Kill the namespace's processes (unless kill=False), release our handles, delete the name."""
        if self.name is None:
            raise UsageError("the root namespace cannot be deleted", "delete a named namespace instead")
        self.close()
        if kill:
            kill_pids(self.pids())
        _netns.delete(self.name)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        from .shield import run_cleanup

        def clean_up() -> None:
            if self.owned and self.name is not None and _netns.exists(self.name):
                self.delete()
            else:
                self.close()

        run_cleanup(clean_up)  # a Ctrl-C during the teardown must not leave the namespace behind

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    @property
    def rtnl(self) -> Rtnl:
        if self._rtnl is None:
            self._rtnl = Rtnl.open(self.name)
        return self._rtnl

    # ---- reading ------------------------------------------------------------------------------
    def links(self) -> builtins.list[Link]:
        return self.rtnl.links(with_addrs=True)

    def link(self, name: str) -> LinkHandle:
        """A handle on device NAME; raises NotFoundError if there is none."""
        return LinkHandle(self, self.rtnl.link(name).ifname)

    def addresses(self, family: int | None = None) -> builtins.list[Address]:
        return self.rtnl.addresses(_FAMILIES[family])

    def routes(self, family: int | None = None) -> builtins.list[Route]:
        return self.rtnl.routes(_FAMILIES[family])

    def pids(self) -> builtins.list[int]:
        return [] if self.name is None else _netns.pids(self.name)

    # ---- creating devices ----------------------------------------------------------------------
    def add_link(self, kind: str, name: str, **params: Any) -> LinkHandle:
        """A device NAME of KIND, with that kind's keywords (nslab.kernel.linkkinds.KINDS; every kind takes
        `mtu`): e.g. add_link("vxlan", "vx0", vni=42, remote="192.0.2.1", dev="eth0"). Devices are given by
        name, a veth's `peer_ns` as a Namespace or a namespace name (the peer is created straight in it)."""
        k = _kinds.kind(kind)
        opts = (*k.opts, *_kinds.COMMON)
        unknown = sorted(set(params) - {o.param for o in opts})
        if unknown:
            raise UsageError(f"{kind} {name!r}: {unknown[0]!r} does not apply to kind {kind}",
                             f"kind {kind} takes: " + ", ".join(sorted(o.param for o in opts)))
        if not k.netlink:
            self._add_tap(name)
        else:
            resolved = dict(params)
            fds: builtins.list[int] = []
            try:
                for o in k.opts:
                    value = params.get(o.param)
                    if value is None or o.resolve is None:
                        continue
                    if o.resolve == "ifindex":
                        resolved[o.param] = self.rtnl.index(value)
                        continue
                    other = value.name if isinstance(value, Namespace) else value
                    resolved[o.param] = None
                    if other != self.name:
                        fds.append(_netns.open_fd(other) if other else os.open("/proc/self/ns/net", os.O_RDONLY))
                        resolved[o.param] = fds[-1]
                try:
                    self.rtnl.do(k.request(name, resolved))
                except NslabError as exc:
                    err = _kinds.refusal(k, exc, params)
                    if err is exc:
                        raise
                    raise err from None
            finally:
                for fd in fds:
                    os.close(fd)
        handle = LinkHandle(self, name)
        if k.mtu == "after" and params.get("mtu") is not None:
            try:
                handle.set_mtu(params["mtu"])
            except BaseException:
                with contextlib.suppress(NslabError):
                    handle.delete()  # made a moment ago by this call (a tap is created exclusively): nothing half-built
                raise
        return handle

    def add_veth(self, name: str, peer: str, peer_ns: Namespace | str | None = None,
                 mtu: int | None = None) -> LinkHandle:
        """A veth pair; the peer end is created directly in `peer_ns` (default: this namespace)."""
        return self.add_link("veth", name, peer=peer, peer_ns=peer_ns, mtu=mtu)

    def add_bridge(self, name: str) -> LinkHandle:
        return self.add_link("bridge", name)

    def add_vxlan(self, name: str, vni: int, *, remote: str | None = None, group: str | None = None,
                  local: str | None = None, dev: str | None = None, port: int = 4789) -> LinkHandle:
        return self.add_link("vxlan", name, vni=vni, remote=remote, group=group, local=local, dev=dev or None,
                             port=port)

    def add_macvlan(self, name: str, lower: str, mode: str = "bridge") -> LinkHandle:
        return self.add_link("macvlan", name, lower=lower, mode=mode)

    def add_tap(self, name: str) -> LinkHandle:
        return self.add_link("tap", name)

    def add_dummy(self, name: str, mtu: int | None = None) -> LinkHandle:
        """A dummy device (module dummy): an interface that drops what it is sent, for addresses and routes."""
        return self.add_link("dummy", name, mtu=mtu)

    def add_vlan(self, name: str, lower: str, vid: int, protocol: str | None = None,
                 mtu: int | None = None) -> LinkHandle:
        """An 802.1Q (or, with protocol="802.1ad", QinQ outer) VLAN device on LOWER (module 8021q)."""
        return self.add_link("vlan", name, lower=lower, vid=vid, protocol=protocol, mtu=mtu)

    def add_wireguard(self, name: str, mtu: int | None = None) -> LinkHandle:
        """A WireGuard device (module wireguard), without keys or peers: nslab does not configure those (wg(8)
        does, over the "wireguard" generic netlink family)."""
        return self.add_link("wireguard", name, mtu=mtu)

    def _add_tap(self, name: str) -> None:
        from .errors import ExistsError
        from .kernel.tuntap import create_tap

        # TUNSETIFF would attach to some existing devices of that name instead of refusing.
        if any(lk.ifname == name for lk in self.rtnl.links()):
            where = f" in namespace {self.name!r}" if self.name else ""
            raise ExistsError(f"cannot create tap {name!r}{where}: a device of that name exists",
                              "pick another name or delete it first")
        if self.name is None:
            create_tap(name)
        else:
            _netns.run_in_netns(self.name, lambda: create_tap(name))

    # ---- addresses and routes ------------------------------------------------------------------
    def add_address(self, cidr: str, dev: str) -> None:
        self.rtnl.do(Rtnl.req_addr(self.rtnl.index(dev), dev, cidr))

    def del_address(self, cidr: str, dev: str) -> None:
        self.rtnl.do(Rtnl.req_addr(self.rtnl.index(dev), dev, cidr, add=False))

    def add_route(self, dst: str, via: str | None = None, dev: str | None = None,
                  metric: int | None = None) -> None:
        if via is None and dev is None:
            raise UsageError(f"route {dst} needs a gateway or a device", "add 'via GATEWAY' or 'dev DEVICE'")
        oif = self.rtnl.index(dev) if dev else None
        self.rtnl.do(Rtnl.req_route(dst, gateway=via, oif=oif, metric=metric))

    def del_route(self, dst: str, via: str | None = None, dev: str | None = None) -> None:
        oif = self.rtnl.index(dev) if dev else None
        self.rtnl.do(Rtnl.req_route(dst, gateway=via, oif=oif, add=False))

    # ---- running programs ----------------------------------------------------------------------
    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a program in the namespace (fast path: it sees the host's /sys and /etc)."""
        if self.name is None:
            return subprocess.Popen(list(argv), **kwargs)
        if self._parked is None:
            self._parked = ParkedThread(self.name)
        return self._parked.popen(argv, **kwargs)

    def run(self, argv: Sequence[str], *, check: bool = False, timeout: float | None = None,
            capture_output: bool = False, text: bool = False, input: str | bytes | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Like subprocess.run, inside the namespace."""
        if capture_output:
            kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        res = finish(self.popen(argv, text=text, **kwargs), input, timeout)
        if check:
            res.check_returncode()
        return res

    def run_full(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run like `ip netns exec`: the program also sees the namespace's own /sys and /etc/netns files.

        Uses iproute2's `ip netns exec` when installed (about 2 ms), else nslab's own `ns exec`
        in a fresh Python (tens of ms).
        """
        import shutil
        import sys

        if self.name is None:
            return subprocess.run(list(argv), **kwargs)
        ip = shutil.which("ip")
        if ip:
            cmd = [ip, "netns", "exec", self.name, *argv]
        else:
            cmd = [sys.executable, "-m", "nslab", "ns", "exec", self.name, "--", *argv]
        return subprocess.run(cmd, **kwargs)


class LinkHandle:
    """A device in a namespace, by name. Methods send one request each and return self to chain."""

    def __init__(self, ns: Namespace, name: str) -> None:
        self.ns = ns
        self.name = name

    def __repr__(self) -> str:
        return f"LinkHandle({self.ns.name!r}, {self.name!r})"

    def info(self) -> Link:
        return self.ns.rtnl.link(self.name, with_addrs=True)

    def _set(self, **kw: Any) -> LinkHandle:
        r = self.ns.rtnl
        r.do(Rtnl.req_set_link(r.index(self.name), self.name, **kw))
        return self

    def up(self) -> LinkHandle:
        return self._set(up=True)

    def down(self) -> LinkHandle:
        return self._set(up=False)

    def set_mtu(self, mtu: int) -> LinkHandle:
        return self._set(mtu=mtu)

    def set_address(self, mac: str) -> LinkHandle:
        return self._set(address=parse_mac(mac))

    def set_master(self, bridge: str | None) -> LinkHandle:
        return self._set(master=self.ns.rtnl.index(bridge) if bridge else 0)

    def move_to(self, other: Namespace | str) -> LinkHandle:
        """Move the device to another namespace. The kernel drops its addresses and brings it down."""
        target = other if isinstance(other, Namespace) else Namespace.open(other)
        fd = _netns.open_fd(target.name) if target.name else os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            self._set(netns_fd=fd)
        finally:
            os.close(fd)
        return LinkHandle(target, self.name)

    def add_address(self, cidr: str) -> LinkHandle:
        self.ns.add_address(cidr, self.name)
        return self

    def delete(self) -> None:
        r = self.ns.rtnl
        r.do(Rtnl.req_del_link(r.index(self.name), self.name))

    @property
    def addresses(self) -> builtins.list[Address]:
        return list(self.info().addr_info)


def _open_netlink() -> Any:
    from .kernel.netlink import NetlinkSocket

    return NetlinkSocket()


def kill_pids(pids: Sequence[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, the given processes (those of one namespace)."""
    _procs.terminate(pids, grace)


__all__ = ["LinkHandle", "Namespace", "Request"]
