"""`nslab [-n NS] link show|set|add|del` (iproute2's ip link)."""

from __future__ import annotations

import argparse
import contextlib
import os

from ..errors import NslabError, UsageError
from ..kernel import netns
from ..kernel.linkkinds import COMMON, KINDS, LinkKind, Opt
from ..kernel.neigh import nsid_names
from ..kernel.rtnl import Rtnl, parse_mac
from ..model import Link
from ..names import check_ifname, check_netns_name, check_utf8
from ..show import (
    Index,
    brief_link_json,
    brief_link_line,
    link_flags,
    link_lines,
    lower_json,
    stats64_json,
    stats_lines,
)
from .common import (
    Words,
    add_show_options,
    checked,
    dev_arg,
    emit_json,
    no_zone,
    object_parser,
    stats_level,
    target_ns,
    verb_parser,
)

SET_WORDS = ["up", "down", "mtu", "master", "nomaster", "netns", "address", "name", "alias"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = object_parser(sub, "link", "network devices (ip link)")
    p = verb_parser(verbs, "show", "list devices, or show one (the default verb: 'nslab link')",
                    aliases=["list", "ls"])
    p.add_argument("dev", nargs="?", type=dev_arg())
    add_show_options(p, family=False)
    p.set_defaults(handler=show)
    p = verb_parser(verbs, "set", "change a device: up|down, mtu N, master BR|nomaster, netns NS, address MAC")
    p.add_argument("dev", type=dev_arg())
    p.add_argument("words", nargs=argparse.REMAINDER)
    p.set_defaults(handler=set_)
    p = verb_parser(verbs, "add", _add_usage())
    p.add_argument("name", type=checked(check_ifname, "NAME"))
    p.add_argument("words", nargs=argparse.REMAINDER)
    p.set_defaults(handler=add)
    p = verb_parser(verbs, "del", "delete a device", aliases=["delete"])
    p.add_argument("dev", type=dev_arg())
    p.set_defaults(handler=delete)


def show(args: argparse.Namespace) -> int:
    ns = target_ns(args)
    level = stats_level(args)
    every = ns.rtnl.links()
    links = every if args.dev is None else [ns.rtnl.link(args.dev)]
    index = {lk.ifindex: lk for lk in every}
    if args.json:
        emit_json([link_json(lk, index, level, args.brief) for lk in links])
        return 0
    if args.brief:
        for lk in links:
            print(brief_link_line(lk, index))
        return 0
    netns_names = netns_names_of(ns.rtnl, links)
    for lk in links:
        print("\n".join(link_lines(lk, index, netns_names)))
        if level:
            print("\n".join(stats_lines(lk, level)))
    return 0


def link_json(lk: Link, index: Index | None, level: int, brief: bool = False,
              with_addrs: bool = False) -> dict[str, object]:
    """`ip -j [-s [-s]] [-br] link` of one device."""
    if brief:
        return brief_link_json(lk, index, with_addrs=with_addrs)
    out = lk.to_json(with_addrs=with_addrs)
    out.pop("link_index", None)
    out.update(lower_json(lk, index), flags=link_flags(lk, index))
    if level:
        out["stats64"] = stats64_json(lk, level)
    return out


def netns_names_of(rtnl: Rtnl, links: list[Link]) -> dict[int, str]:
    """netnsid -> /run/netns name for the peers the links name, for `link-netns NAME` (nothing to look up: {})."""
    wanted = {lk.link_netnsid for lk in links if lk.link_netnsid is not None and lk.link_netnsid >= 0}
    return nsid_names(rtnl, wanted) if wanted else {}


def set_(args: argparse.Namespace) -> int:
    w = Words(args.words, f"link set {args.dev}")
    if not w.more():
        raise UsageError(f"link set {args.dev}: nothing to change", "add one of: " + ", ".join(SET_WORDS))
    kw: dict[str, object] = {}
    target_netns: str | None = None
    master: str | None = None
    # Every word is parsed and checked before the namespace is even opened: bad input reaches no kernel.
    while w.more():
        word = w.next()
        if word in ("up", "down"):
            kw["up"] = word == "up"
        elif word == "mtu":
            kw["mtu"] = w.integer("mtu", "bytes", 68, 65535)
        elif word == "master":
            master = w.name("master", "bridge", lambda t: check_ifname(t, "bridge name"))
        elif word == "nomaster":
            kw["master"] = 0
        elif word == "netns":
            target_netns = w.name("netns", "namespace", check_netns_name)
        elif word == "address":
            kw["address"] = parse_mac(w.value("address", "mac"))
        elif word == "name":
            kw["new_name"] = w.name("name", "new name", lambda t: check_ifname(t, "new name"))
        elif word == "alias":
            kw["alias"] = _check_alias(w.value("alias", "text"))  # "" clears it, as in ip
        else:
            raise w.unknown(word, SET_WORDS)
    ns = target_ns(args)
    if master is not None:
        kw["master"] = ns.rtnl.index(master)
    before = ns.rtnl.link(args.dev)
    if kw.get("master"):
        kind = next((lk.kind for lk in ns.rtnl.links() if lk.ifindex == kw["master"]), None)
        if kind != "bridge":
            raise UsageError(f"link set {args.dev}: master must be a bridge, and it is a {kind or 'plain'} device",
                             "name a bridge (create one with 'nslab link add NAME type bridge')")
    fd = None
    try:
        if target_netns is not None:
            fd = netns.open_fd(target_netns)
            with Rtnl.open(target_netns) as other:
                if any(lk.ifname == args.dev for lk in other.links()):
                    raise UsageError(f"link set {args.dev}: a device named {args.dev!r} already exists in "
                                     f"namespace {target_netns!r}",
                                     "rename it first with 'name NEWNAME', or pick another namespace")
        try:
            if kw:
                ns.rtnl.do(Rtnl.req_set_link(before.ifindex, args.dev, **kw))  # type: ignore[arg-type]
            # Moving to another namespace goes last: the other changes apply here first.
            if fd is not None:
                ns.rtnl.do(Rtnl.req_set_link(before.ifindex, args.dev, netns_fd=fd))
        except BaseException:
            _restore(ns.rtnl, before)
            raise
    finally:
        if fd is not None:
            os.close(fd)
    return 0


def _restore(rtnl: Rtnl, before: Link) -> None:
    """The kernel applies a request's parts in turn and keeps what it did before a refusal: undo it."""
    with contextlib.suppress(NslabError):
        rtnl.do(Rtnl.req_set_link(
            before.ifindex, before.ifname, up="UP" in before.flags, mtu=before.mtu,
            master=before.master_index or 0,
            address=parse_mac(before.address) if before.address and before.link_type == "ether" else None,
        ))


def _check_alias(text: str) -> str:
    check_utf8(text, "link set: alias")
    if len(text.encode()) > 255:  # IFALIASZ - 1
        raise UsageError(f"alias is {len(text.encode())} bytes long, the kernel allows at most 255",
                         "shorten the alias")
    return text


def _add_usage() -> str:
    return ("create a device: NAME " + " | ".join(f"type {k.name} {k.usage}".rstrip() for k in KINDS.values())
            + "; ip's order works too: link DEV name NAME type ...")


def _read(w: Words, o: Opt) -> str:
    """The value of option O, checked as its kind of value says (integers and the codec's checks come later)."""
    meaning = o.word.replace("-", " ")
    if o.value == "ifname":
        return w.name(o.word, meaning, lambda t: check_ifname(t, o.what))
    if o.value == "netns":
        return w.name(o.word, meaning, check_netns_name)
    if o.value == "ip":
        return w.name(o.word, meaning, lambda t: no_zone(t, o.what))
    return w.value(o.word, meaning)


def _own(kind: LinkKind | None, word: str) -> Opt | None:
    """KIND's option of that WORD (its own or a common one)."""
    if kind is None:
        return None
    return next((o for o in (*kind.opts, *COMMON) if o.word == word), None)


def _name_and_words(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The device's name and the other words, in ip's two orders: `add NAME ...` and `add link DEV name NAME
    ...` (`name NAME` in any key's place; a device called link or name is then written `name link`)."""
    words = list(args.words)
    name: str | None = args.name
    if name in ("link", "name") and words:
        words, name = [name, *words], None
    rest: list[str] = []
    i = 0
    while i < len(words):  # every word is a key with one value: name's value is never another key's
        key, value = words[i], words[i + 1:i + 2]
        if key == "name":
            given = Words(value, f"link add {name or ''}".rstrip()).name("name", "device name", check_ifname)
            if name is not None:
                raise UsageError(f"link add {name}: a second name {given!r}", "give the device's name once")
            name = given
        else:
            rest += [key, *value]
        i += 2
    if name is None:
        raise UsageError("link add: no device name", "add 'name NAME' (or write it first: 'link add NAME type ...')")
    return name, rest


def add(args: argparse.Namespace) -> int:
    name, words = _name_and_words(args)
    context = f"link add {name}"
    w = Words(words, context)
    by_word: dict[str, Opt] = {}
    for o in (*(o for k in KINDS.values() for o in k.opts), *COMMON):
        by_word.setdefault(o.word, o)  # kinds may share a word (vxlan's id, vlan's id) with other rules
    keys = ["type", "name", *by_word]  # name: taken out before (_name_and_words), listed for the hints
    kind_name = None
    opts: dict[str, str] = {}
    read_as: dict[str, Opt] = {}
    while w.more():
        word = w.next()
        if word not in keys:
            raise w.unknown(word, keys)
        if word == "type":
            kind_name = w.value("type", "type")
        else:
            read_as[word] = _own(KINDS.get(kind_name or ""), word) or by_word[word]
            opts[word] = _read(w, read_as[word])
    if kind_name is None:
        raise UsageError(f"{context}: no type given", "add 'type KIND', KIND one of: " + ", ".join(KINDS))
    if kind_name not in KINDS:
        raise w.unknown(kind_name, list(KINDS))
    kind = KINDS[kind_name]
    for word, o in read_as.items():
        own = _own(kind, word)
        if own is not None and own is not o:  # read before 'type', by another kind's rules: read it again
            _read(Words([opts[word]], context), own)

    def integer(o: Opt) -> int:
        return Words([opts[o.word]], context).integer(o.word, o.unit, o.lo, o.hi)

    params: dict[str, object] = {o.param: integer(o) for o in COMMON if o.word in opts and o.value == "int"}
    allowed = {o.word for o in (*kind.opts, *COMMON)}
    extra = sorted(set(opts) - allowed)
    if extra:
        raise UsageError(f"{context}: {extra[0]!r} does not apply to type {kind_name}",
                         f"type {kind_name} takes: " + ", ".join(sorted(allowed)))
    # Every option is checked before the namespace is opened: missing ones, then numbers, then the codec's checks.
    for o in kind.opts:
        if o.required is not None and o.word not in opts:
            raise UsageError(f"{context}: {o.required[0]}", o.required[1])
    for o in kind.opts:
        if o.word in opts:
            params[o.param] = integer(o) if o.value == "int" else opts[o.word]
    for o in kind.opts:
        if o.check is not None and o.word in opts:
            o.check(opts[o.word])
    target_ns(args).add_link(kind_name, name, **params)
    return 0


def delete(args: argparse.Namespace) -> int:
    ns = target_ns(args)
    ns.link(args.dev).delete()
    return 0
