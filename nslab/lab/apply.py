"""Bring a planned lab into the kernel and take it out again, all-or-nothing.

Order of work (each step one batch per namespace):
  1. namespaces, with lo up, the ownership marker on lo, sysctls and (switches) the bridge;
  2. veth pairs, each created from one end's namespace with the peer made directly in the other's,
     with ifindexes chosen by the plan so that no read-back is needed;
  3. the second end's bridge port, addresses, routes (protocol rtnl.RTPROT_NSLAB: recognisably nslab's);
  the file's node settings add 1b/2b (sysctls), 3a (loopback addresses) and, called by the Lab, 4 (exec).
The state record is written before step 1, so an interrupted `up` (even kill -9) leaves only names
that `down`/`cleanup` know. On an error (or Ctrl-C), everything this `up` created is deleted before
re-raising: the namespaces it made, and the veths the kernel acknowledged making for it; the record
forgets a namespace only once it is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import threads
from ..errors import FeatureMissing, NslabError, UsageError
from ..kernel import bulk, netns, sysctl
from ..kernel.netns import doors
from ..kernel.rtnl import RTPROT_NSLAB, Request, Rtnl
from ..shield import run_cleanup
from . import state as st
from .nodeview import remove_lab_dir
from .plan import IfacePlan, LinkPlan, NodePlan, Plan, sysctl_device
from .system import stop_supervisor

Progress = Callable[[str, int, int], None]  # phase, done, total


@dataclass
class Layout:
    """Kernel ifindexes per (node, ifname): lo is 1, a switch's bridge 2, then interfaces in plan order."""

    index: dict[tuple[str, str], int]

    @classmethod
    def of(cls, plan: Plan) -> Layout:
        nxt: dict[str, int] = {}
        index: dict[tuple[str, str], int] = {}
        for node in plan.nodes:
            nxt[node.name] = 2
            if node.bridge:
                index[(node.name, node.bridge)] = 2
                nxt[node.name] = 3
        for link in plan.links:
            for end in (link.a, link.b):
                index[(end.node, end.ifname)] = nxt[end.node]
                nxt[end.node] += 1
        return cls(index)


def _sysctls(forwarding: bool) -> list[tuple[str, str]]:
    """Only routers need any (each write is a /proc open, as dear as a netlink request).

    Forwarding, and no DAD: a router resolving a next hop for a forwarded packet sends its neighbour
    solicitation from its link-local address, which stays tentative for a second or two otherwise,
    so the first packets through a fresh router would be lost. Lab addresses are added with nodad.
    """
    if forwarding:
        return [("net.ipv4.ip_forward", "1"), ("net.ipv6.conf.all.forwarding", "1"),
                ("net.ipv6.conf.default.accept_dad", "0"), ("net.ipv6.conf.all.accept_dad", "0")]
    return []


def _create_nodes(lab: str, nodes: Sequence[NodePlan], record: st.LabState, made: list[str],
                  socks: dict[str, Rtnl], report: Progress) -> None:
    """Namespaces with lo up, the marker, sysctls and (switches) the bridge, on two door threads:
    measured 1.5-1.8x faster than one for 1000 namespaces on this 2-CPU machine kind.

    Two workers take nodes one at a time and record each namespace in MADE (its socket in SOCKS) the moment it
    exists. They block SIGINT/SIGTERM and are always joined before this returns or raises, also on Ctrl-C:
    so whatever exists is in MADE, and nothing is created after the caller's rollback has started."""
    workers = doors(max(1, min(2, os.cpu_count() or 1)))
    todo = list(reversed(nodes))  # taken from the end, in plan order
    cond = threading.Condition()
    failures: list[BaseException] = []
    running = [0]

    def work(door: netns._Door) -> None:
        try:
            while True:
                with cond:
                    if failures or not todo:
                        return
                    n = todo.pop()
                try:
                    r = bulk.create(n.netns, _sysctls(n.forwarding), via=door, marker=st.marker(lab, n.name))
                except BaseException as exc:
                    with cond:
                        failures.append(exc)
                    return
                with cond:
                    made.append(n.netns)
                    socks[n.name] = r
                    record.inodes[n.name] = list(bulk.inode(n.netns) or ())
                    ident = netns.socket_ns_id(r.nl.sock)  # of the socket made inside it: no race
                    if ident is not None:
                        record.ids[n.name] = ident
                    cond.notify_all()
                if n.bridge:
                    try:
                        r.run_all([Rtnl.req_add_link(n.bridge, "bridge", index=2, up=True)])
                    except BaseException as exc:
                        with cond:
                            failures.append(exc)
                        return
        finally:
            with cond:
                running[0] -= 1
                cond.notify_all()

    workers_ = [threads.Thread(target=work, args=(d,), name=f"nslab-up_{i}", daemon=True)
                for i, d in enumerate(workers)]
    started: list[threads.Thread] = []
    try:
        for t in workers_:
            with cond:
                running[0] += 1
            started.append(t)
            t.start()
        next_report = 0
        while True:
            with cond:
                if failures:
                    raise failures[0]
                done, busy = len(made), running[0] > 0
                if busy and done < next_report:
                    cond.wait(0.1)
                    continue
            if done >= next_report:
                report("namespaces", done, len(nodes))
                next_report = (done // 64 + 1) * 64
            if not busy:
                with cond:
                    if failures:
                        raise failures[0]
                return
    finally:
        # A signal's exception (Ctrl-C, SIGTERM) can land between a `with cond:`'s acquire and its block,
        # leaving this thread owning the reentrant lock: the workers would then wait for it forever while
        # we join them (seen: an interrupted `lab up` hung holding the lab's lock). Give every level back.
        give_back(cond)
        # Stop handing out nodes, and wait for the namespace being made (a second Ctrl-C cannot cut this).
        with cond:
            todo.clear()

        def join() -> None:
            give_back(cond)
            for t in started:
                t.join()

        run_cleanup(join)


def give_back(cond: threading.Condition) -> None:
    """Release every level of COND's (reentrant) lock that this thread holds; nothing if it holds none."""
    while True:
        try:
            cond.release()
        except RuntimeError:  # not owned by this thread (any more)
            return


def _creator(link: LinkPlan, kinds: dict[str, str]) -> tuple[IfacePlan, IfacePlan]:
    """Create a veth from the switch side when there is one, so the port joins its bridge at birth."""
    if kinds[link.b.node] == "switch" and kinds[link.a.node] != "switch":
        return link.b, link.a
    return link.a, link.b


def up(plan: Plan, record: st.LabState, progress: Progress | None = None,
       only_nodes: Sequence[str] | None = None, only_links: Sequence[LinkPlan] | None = None,
       only_routes: bool = False, finish: Callable[[st.LabState], None] | None = None,
       then: Callable[[], object] | None = None) -> None:
    """Create the lab of `plan` (or, with only_*, the parts of it that a running lab lacks: a grow).

    Routes are installed in the namespaces this call creates. THEN runs inside the all-or-nothing (if it
    fails, what this call made is rolled back): a grow's caller brings the routes of the namespaces that
    existed to the new plan in it (the reconcile engine, which leaves a user's routes alone), a first `up`
    applies the plan's declared impairments in it. only_routes is kept for callers of the old signature and
    changes nothing."""
    report = progress or (lambda phase, done, total: None)
    nodes = [n for n in plan.nodes if only_nodes is None or n.name in only_nodes]
    links = list(plan.links if only_links is None else only_links)
    kinds = {n.name: n.kind for n in plan.nodes}
    layout = Layout.of(plan)
    netns_of = {n.name: n.netns for n in plan.nodes}

    # 1. The intent log, then namespaces.
    status_before = record.status
    for n in nodes:
        record.netns[n.name] = n.netns
    record.status = "creating"
    record.pid = os.getpid()
    st.save(record)
    made: list[str] = []
    socks: dict[str, Rtnl] = {}
    created: list[tuple[str, Request]] = []  # veth requests the kernel acknowledged: this call made them
    veth_of: dict[int, tuple[IfacePlan, IfacePlan]] = {}  # id(request) -> (creating end, peer end)
    try:
        _create_nodes(plan.lab, nodes, record, made, socks, report)
        report("namespaces", len(nodes), len(nodes))
        write_node_sysctls(nodes, late=False)  # 1b. the file's sysctls that exist from birth (issue 12)
        # Sockets for nodes that existed already (reconcile adds links to them).
        for name in {e.node for lk in links for e in (lk.a, lk.b)} - socks.keys():
            socks[name] = Rtnl.open(netns_of[name])

        # 2. veth pairs, one batch per creating namespace. Peer namespace fds are opened for that
        # batch only, so a lab needs about one fd per node (its socket), not two.
        second: dict[str, list[Request]] = {}
        by_creator: dict[str, list[tuple[IfacePlan, IfacePlan]]] = {}
        for lk in links:
            a, b = _creator(lk, kinds)
            by_creator.setdefault(a.node, []).append((a, b))
        for creator, pairs in by_creator.items():

            def make_links(fds: dict[str, int], pairs: list[tuple[IfacePlan, IfacePlan]] = pairs,
                           creator: str = creator) -> None:
                batch: list[Request] = []
                for a, b in pairs:
                    # The peer cannot be up at birth (veth_open: ENOTCONN until both ends exist).
                    peer = Rtnl.veth_peer(b.ifname, netns_fd=fds[netns_of[b.node]], mtu=b.mtu,
                                          index=layout.index[(b.node, b.ifname)])
                    master = 2 if kinds[a.node] == "switch" else None
                    req = Rtnl.req_add_link(
                        a.ifname, "veth", peer, index=layout.index[(a.node, a.ifname)], mtu=a.mtu, up=True,
                        master=master)
                    veth_of[id(req)] = (a, b)
                    batch.append(req)
                    second.setdefault(b.node, []).append(Rtnl.req_set_link(
                        layout.index[(b.node, b.ifname)], b.ifname, up=True,
                        master=2 if kinds[b.node] == "switch" else None))
                bulk.send(socks, {creator: batch}, done=created)

            bulk.with_fds(sorted({netns_of[b.node] for _, b in pairs}), make_links)
        report("links", len(links), len(links))
        write_node_sysctls(nodes, late=True)  # 2b. the file's sysctls of interfaces, now that they exist

        # 3a. Loopback addresses (issue 12), in the same batches as the links' addresses.
        for n in nodes:
            for cidr in n.loopback:
                second.setdefault(n.name, []).append(Rtnl.req_addr(1, "lo", cidr))

        # 3. Bridge ports of second ends, addresses, routes.
        for lk in links:
            for end in (lk.a, lk.b):
                for cidr in end.addresses:
                    second.setdefault(end.node, []).append(
                        Rtnl.req_addr(layout.index[(end.node, end.ifname)], end.ifname, cidr))
        route_nodes = {n.name for n in nodes}
        for rp in plan.routes:
            if rp.node in route_nodes:
                second.setdefault(rp.node, []).append(Rtnl.req_route(
                    rp.dst, gateway=rp.via, oif=layout.index[(rp.node, rp.dev)], replace=True,
                    protocol=RTPROT_NSLAB))
        bulk.send(socks, second)
        report("addresses", len(nodes), len(nodes))
        if then is not None:
            then()
    except BaseException:

        def roll_back() -> None:
            # Veths this call made, as the kernel acknowledged each request (ownership proven at creation,
            # never by name, kind or index read back later: a user's device can have all three). Those with
            # an end in a namespace that existed before (a grow) are deleted now, synchronously, so that a
            # retry finds their names free; the others go with their namespaces. Deleting one end deletes both.
            new_nodes = {n.name for n in nodes}
            for creator, req in created:
                a, b = veth_of[id(req)]
                if {a.node, b.node} <= new_nodes or creator not in socks:
                    continue
                with contextlib.suppress(NslabError):
                    socks[creator].run_all([Rtnl.req_del_link(layout.index[(a.node, a.ifname)], a.ifname)])
            for r in socks.values():
                r.close()
            socks.clear()
            bulk.delete(made)
            # The record forgets a namespace only once it is gone: never while one of ours may still exist.
            for n in nodes:
                if n.netns in made and os.path.lexists(netns.path(n.netns)):
                    continue
                record.netns.pop(n.name, None)
                record.inodes.pop(n.name, None)
                record.ids.pop(n.name, None)
            if not record.netns:
                st.remove(record.lab)
                return
            if status_before == "up":
                record.status = "up"
            st.save(record)

        run_cleanup(roll_back)  # a second Ctrl-C must not stop the rollback half-way
        raise
    finally:
        for r in socks.values():
            r.close()
    record.status = "up"
    if finish is not None:
        finish(record)
    st.save(record)


# ---- issue 12: the steps a node's own settings add (sysctls, exec) ---------------------------------------------
def write_node_sysctls(nodes: Sequence[NodePlan], late: bool) -> None:
    """Steps 1b and 2b: each node's `sysctls:` inside its namespace. Those about an interface
    (net.ipv4.conf.eth0.*) once the interfaces exist (LATE), all others right after the namespace is made,
    before any device: so that net.ipv6.conf.default.* applies to the lab's interfaces too."""
    todo = [(n, values) for n in nodes
            if (values := [(k, v) for k, v in n.sysctls if (sysctl_device(k) is not None) == late])]
    if not todo:
        return
    door = netns.door()

    def visit() -> None:
        # One visit of the door thread for every node (a thread per node cost 1.5 ms each, measured).
        try:
            for n, values in todo:
                fd = netns.open_fd(n.netns)
                try:
                    netns.setns(fd, name=n.netns)
                finally:
                    os.close(fd)
                _write_sysctls(n.name, values)
        finally:
            door.go_home()

    door.call(visit)


def _write_sysctls(node: str, values: Sequence[tuple[str, str]]) -> None:
    for key, value in values:
        try:
            sysctl.write(key, value)
        except FeatureMissing:
            raise FeatureMissing(
                f"node {node}: sysctl {key} does not exist in a network namespace on this kernel",
                "not every net.* key is per namespace (net.core.rmem_max is the machine's); "
                "see 'ip netns exec NS sysctl -a' for those that are") from None
        except OSError as exc:
            hint = ("give a value that 'sysctl -w' takes for this key" if exc.errno not in (errno.EACCES, errno.EPERM)
                    else f"{key} is likely the machine's, not the node's: the kernel keeps it read-only inside a "
                         "network namespace; drop it, and set it on the host if the lab needs it")
            raise UsageError(f"node {node}: the kernel refused sysctl {key}={value!r}: {exc.strerror or exc}",
                             hint) from None


EXEC_TIMEOUT = 300.0  # seconds a one-shot command may take: a hung one fails `up` rather than hanging it
EXEC_TAIL = 10  # lines of output shown when one fails


def run_exec(plan: Plan, popen: Callable[..., subprocess.Popen[Any]], only: Sequence[str] | None = None,
             timeout: float = EXEC_TIMEOUT) -> None:
    """Step 4: the nodes' `exec:` commands, once the network is up (addresses, routes, sysctls). Node by node
    in plan order, each node's in file order; the first that fails (exit status, cannot start, timeout) raises
    NslabError with its output tail, and `up` rolls the lab back. POPEN(node, argv, **kw) starts a program
    the way the Python API does (the node's env and view). Output goes to a file, not a pipe: a command that
    leaves a daemon behind holding its stdout must not keep `up` waiting."""
    for n in plan.nodes:
        if only is not None and n.name not in only:
            continue
        for j, argv in enumerate(n.exec):
            shown = argv[2] if argv[:2] == ("sh", "-c") else shlex.join(argv)
            where = f"node {n.name}: exec[{j}] {shown!r}"
            with tempfile.TemporaryFile() as out:
                try:
                    proc = popen(n.name, list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
                except OSError as exc:
                    raise NslabError(f"{where}: cannot start: {exc.strerror or exc}",
                                     "check the command's name and that it is installed") from None
                try:
                    rc: int | None = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    rc = None
                finally:
                    if proc.returncode is None:  # timed out, or Ctrl-C: its whole session goes
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, 9)
                        proc.wait()
                if rc == 0:
                    continue
                out.seek(0)
                lines = out.read()[-16384:].decode(errors="replace").splitlines()[-EXEC_TAIL:]
                what = f"did not finish within {timeout:g} s" if rc is None else \
                    f"exited with status {rc}" if rc > 0 else f"was killed by signal {-rc}"
                tail = " | ".join(line.strip()[:200] for line in lines if line.strip()) or "(no output)"
                raise NslabError(f"{where} {what}; output: {tail}",
                                 "fix the command (the lab was rolled back), then run up again")


def down(record: st.LabState, progress: Progress | None = None) -> tuple[int, int]:
    """Delete the lab's namespaces that carry its marker (or, for a crashed `up`, that it recorded
    and that carry no marker at all). Returns (deleted, skipped-not-ours)."""
    report = progress or (lambda phase, done, total: None)
    stop_supervisor(record.lab)  # its services, views and pid namespace go first (nslab.lab.system)
    # No "deleting" rewrite of the record: an interrupted down leaves it "up", and down runs again.
    ours, skipped = [], 0
    names = list(record.netns.items())
    for i, (node, ns) in enumerate(names):
        if _ours(record, node, ns):
            ours.append(ns)
        elif netns.exists(ns):
            skipped += 1
        if i % 256 == 0:
            report("checking", i, len(names))
    # A create killed between making /run/netns/NAME and mounting on it leaves a bare file: the name is
    # in our record and was made with O_EXCL, so it is ours to remove.
    bulk.remove_stale(ns for ns in record.netns.values() if ns not in ours)
    deleted = bulk.delete(ours)
    report("deleting", len(deleted), len(names))
    st.remove(record.lab)
    remove_lab_dir(record.lab)  # views' files, private dirs, service logs
    _wait_gone(ours)
    return len(deleted), skipped


def _ours(record: st.LabState, node: str, ns: str) -> bool:
    """Whether the namespace mounted on NS now is the one this lab created for NODE.

    The namespace id recorded at creation (from the socket made inside it) proves it alone: ids are
    never reused, and reading it is one open and one ioctl (reading the marker means a socket made
    inside the namespace: 10x dearer, 60 % of a 1000-node `down`). Without a usable id (a crashed
    `up` recorded none, or a kernel before 6.18) the marker must be ours, which is set before a
    namespace's name is mounted, and the inode recorded at creation must match when known (inode
    numbers are reused, so it alone proves nothing)."""
    known_id = record.ids.get(node)
    if known_id is not None:
        got = netns.ns_id(ns)
        if got is not None:
            return got == known_id
    mark = st.parse_marker(bulk.lo_alias(ns))
    known = record.inodes.get(node)
    return mark == (record.lab, node) and (known is None or list(bulk.inode(ns) or ()) == known)


def _wait_gone(names: Sequence[str], timeout: float = 2.0) -> None:
    """Names are free at once; wait only until the files are gone (the kernel reaps devices later)."""
    from ..kernel import netns

    deadline = time.monotonic() + timeout
    while any(netns.exists(n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.01)
