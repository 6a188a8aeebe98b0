"""The Python API of labs: `with Lab.topo("single", 3) as lab: lab["h1"].run(["ping", "-c1", "h2"])`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import nodes as node_run
from ..errors import NotFoundError, NslabError, UsageError
from ..kernel.packet import DEFAULT_SNAPLEN
from ..namespace import Namespace
from ..shield import run_cleanup
from . import apply, builtin, client, nodeview, reconcile, system
from . import state as st
from .checks import Checker
from .loader import parse_file
from .model import Between, Check, Endpoint, Link, Node, Pools, StaticRoute
from .plan import LinkPlan, Plan, make_plan
from .spec import Topology

if TYPE_CHECKING:
    from ..capture import Capture, Packet
    from ..perf import PerfResult
    from ..reach import ReachResult
    from .schedule import Action, Run

PERF_WARMUP = 0.3  # nslab.perf.WARMUP (a test holds them equal): perf is imported on first use only


def topology_to_data(t: Topology) -> dict[str, Any]:
    """The topology as plain JSON data (what the state records, to re-plan a running lab)."""
    return {
        "name": t.name,
        "routing": t.routing,
        "pools": {"ipv4_lan": t.pools.ipv4_lan, "ipv4_p2p": t.pools.ipv4_p2p, "ipv6": t.pools.ipv6},
        "nodes": {k: _node_to_data(v) for k, v in t.nodes.items()},
        "links": [
            {"endpoints": [{"node": e.node, "ifname": e.ifname, "ipv4": e.ipv4, "ipv6": e.ipv6}
                           for e in lk.endpoints],
             "mtu": lk.mtu, "prefix": lk.prefix, "prefix6": lk.prefix6, "impair": lk.impair,
             **({"origin": lk.origin} if lk.origin is not None else {})}
            for lk in t.links
        ],
        "checks": [{"kind": c.kind, "src": c.src, "dst": c.dst, "port": c.port, "retries": c.retries}
                   for c in t.checks],
        **({"groups": t.groups} if t.groups else {}),
        **({"profiles": t.profiles} if t.profiles else {}),
        **({"between": [{"a": x.a, "b": x.b, "impair": x.impair} for x in t.between]} if t.between else {}),
    }


def _node_to_data(n: Node) -> dict[str, Any]:
    """A node as data; the settings of issue 12 only when given, so that older records' digests still match."""
    out: dict[str, Any] = {"name": n.name, "kind": n.kind}
    for key in ("env", "sysctls", "loopback", "exec"):
        if getattr(n, key):
            out[key] = getattr(n, key)
    if n.routes:
        out["routes"] = [{"to": r.to, "via": r.via} for r in n.routes]
    if n.files or n.private or n.services:
        out.update(files=n.files, private=n.private, services=[s.to_data() for s in n.services])
    return out


def _node_from_data(v: dict[str, Any]) -> Node:
    from .svcspec import ServiceSpec

    return Node(name=v["name"], kind=v["kind"], env=v.get("env", {}), sysctls=v.get("sysctls", {}),
                routes=[StaticRoute(r["to"], r["via"]) for r in v.get("routes", [])],
                loopback=v.get("loopback", []), exec=v.get("exec", []),
                files=v.get("files", {}), private=v.get("private", []),
                services=[ServiceSpec.from_data(s) for s in v.get("services", [])])


def topology_from_data(d: dict[str, Any]) -> Topology:
    return Topology(
        name=d["name"],
        nodes={k: _node_from_data(v) for k, v in d["nodes"].items()},
        links=[Link(endpoints=[Endpoint(**e) for e in lk["endpoints"]], mtu=lk["mtu"], prefix=lk["prefix"],
                    prefix6=lk["prefix6"], impair=lk.get("impair", {}), origin=lk.get("origin"))
               for lk in d["links"]],
        routing=d["routing"],
        pools=Pools(**d["pools"]),
        checks=[Check(**c) for c in d.get("checks", [])],
        groups=d.get("groups", {}),
        profiles=d.get("profiles", {}),
        between=[Between(x["a"], x["b"], x["impair"]) for x in d.get("between", [])],
        source=d.get("source", "<state>"),
    )


def digest(topology: Topology) -> str:
    """Identifies a topology: the plan is a pure function of it, so equal digests mean equal plans."""
    data = json.dumps(topology_to_data(topology), sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _finish_record(rec: st.LabState, topology: Topology, plan_digest: str) -> None:
    rec.topology = topology_to_data(topology)
    rec.plan_digest = plan_digest


def down_by_name(name: str, progress: apply.Progress | None = None) -> tuple[int, int]:
    """Take lab NAME down: its services, faults, namespaces, logs. Returns (deleted, left alone)."""
    from .. import faults, services

    services.forget(name)  # reap the service processes this process started
    with st.locked(name):
        system.stop_supervisor(name)  # also without a record (apply.down does it for a recorded lab)
        rec = st.load(name)
        deleted = skipped = 0
        if rec is not None:
            faults.forget(name)  # resumes stopped processes so that they can be terminated
            deleted, skipped = apply.down(rec, progress)
        nodeview.remove_lab_dir(name)
    services.remove_logs(name)
    return deleted, skipped


@dataclass
class UpResult:
    lab: str
    changed: bool
    nodes: int
    links: int
    routes: int
    seconds: float
    added_nodes: int = 0
    added_links: int = 0
    repaired: list[str] = field(default_factory=list)  # what `up` on a running lab put back to its plan
    left_alone: list[str] = field(default_factory=list)  # what differs from the plan and was not changed

    def summary(self) -> str:
        tail = "".join(f"\n  {line}" for line in self.repaired)
        if self.left_alone:
            tail += "\nleft alone:" + "".join(f"\n  {line}" for line in self.left_alone)
        if self.repaired:
            return (f"lab {self.lab}: already up with this topology; its kernel state had drifted from the plan, "
                    f"repaired {len(self.repaired)} difference{'s' if len(self.repaired) != 1 else ''} "
                    f"in {self.seconds:.2f} s:{tail}")
        if not self.changed:
            return f"lab {self.lab}: already up with this topology, nothing changed{tail}"
        if self.added_nodes or self.added_links:
            return (f"lab {self.lab}: added {self.added_nodes} nodes and {self.added_links} links "
                    f"in {self.seconds:.2f} s")
        return (f"lab {self.lab} up: {self.nodes} nodes, {self.links} links, {self.routes} routes "
                f"in {self.seconds:.2f} s")


class Lab:
    """A lab: a topology, its plan, and (once up) the namespaces that realise it."""

    def __init__(self, topology: Topology, source: str | None = None) -> None:
        self.topology = topology
        self.source = source
        self._plan: Plan | None = None
        self._planned = ""  # the digest of the topology _plan was made from

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> Lab:
        """The lab of a topology file, planned (checked, addressed, routed) once, here."""
        t = parse_file(path)
        if name:
            Checker(t).lab()  # the file's own name must be valid too, whatever --name says
            t.name = name
        lab = cls(t, os.path.abspath(path))
        lab.plan  # noqa: B018  (planning is the file's validation: its errors belong to loading)
        if t.faults:  # the schedule's names, links and overlaps are the file's too
            from .schedule import validate

            validate(t, lab.plan)
        return lab

    @classmethod
    def topo(cls, kind: str, *args: int, name: str | None = None) -> Lab:
        return cls(builtin.topo(kind, *args, name=name))

    @classmethod
    def from_topo_arg(cls, arg: str, name: str | None = None) -> Lab:
        return cls(builtin.parse_topo_arg(arg, name=name))

    @classmethod
    def attach(cls, name: str) -> Lab:
        """The running lab NAME, as recorded by `up`."""
        rec = st.load(name)
        if rec is not None and rec.status in ("creating", "deleting"):
            verb = "up" if rec.status == "creating" else "down"
            raise NotFoundError(
                f"lab {name!r} is not up: it is recorded as {rec.status!r} (a `lab {verb}` by pid {rec.pid} still "
                f"running, or killed before it finished)",
                f"if no `lab {verb}` is running, remove what it left: nslab lab down {name}")
        if rec is None or rec.status != "up":
            raise NotFoundError(f"no lab named {name!r} is up", "see 'nslab lab list'; start it with 'nslab lab up'")
        return cls(topology_from_data(rec.topology), rec.source)

    @staticmethod
    def running() -> list[str]:
        return st.names()

    @property
    def name(self) -> str:
        return self.topology.name

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            self._plan, self._planned = make_plan(self.topology), digest(self.topology)
        return self._plan

    # ---- life cycle ---------------------------------------------------------------------------
    def up(self, progress: apply.Progress | None = None) -> UpResult:
        """Create the lab; on a running lab, add what the topology gained, or refuse a change. Declared
        impairments are applied within the same all-or-nothing: if they fail, nothing of the lab is left."""
        from .. import faults

        t0 = time.perf_counter()
        planned = digest(self.topology)
        if self._plan is None or self._planned != planned:  # the topology changed since it was planned
            self._plan, self._planned = make_plan(self.topology), planned
        plan = self._plan
        rec = st.load(self.name)
        if rec is not None and rec.status == "up" and rec.plan_digest == planned:
            from .schedule import repair_orphan

            repair_orphan(self)  # what a killed fault schedule left: undone before the repair reads the record
        with st.locked(self.name):
            rec = st.load(self.name)
            # We hold the lab's lock, and an `up` holds it from start to end: a record still
            # "creating" is an interrupted `up`, whatever its pid says (pids get reused).
            if rec is not None and rec.status == "creating":
                raise UsageError(
                    f"lab {self.name!r} was interrupted while coming up",
                    f"remove its remains with 'nslab lab down {self.name}', then run up again",
                )
            if rec is not None:
                if rec.plan_digest == planned:
                    return self._repair(plan, t0, progress)
                return self._reconcile(rec, plan, t0, progress)
            clash = [n.netns for n in plan.nodes if os.path.lexists(f"/run/netns/{n.netns}")]
            if clash:
                raise UsageError(
                    f"cannot bring up lab {self.name!r}: namespace {clash[0]!r} already exists"
                    + (f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""),
                    "another program or lab uses that name: pick another lab name with --name",
                )
            # The intent record holds names only; the topology joins it once the lab is up.
            rec = st.LabState(lab=self.name, status="creating", pid=os.getpid(), source=self.source,
                              created=time.time(), created_mono=time.monotonic())

            prepared = system.prepare(plan, self.topology)  # host paths checked before anything exists
            system.stop_supervisor(self.name)  # one left by a lab whose record was removed without a down
            lease: list[Any] = []

            def declared() -> None:
                try:
                    faults.apply_declared(self)
                    # start_supervisor, create_views, the nodes' exec (in their views, once the network is up),
                    # start_services: inside the all-or-nothing, so a failing exec or service rolls the lab back.
                    lease.append(system.bring_up(plan, self.topology, prepared, progress,
                                                 before_services=lambda: self._run_exec(plan)))
                except BaseException:
                    run_cleanup(lambda: faults.forget(self.name))  # the lab is rolled back: its record goes too
                    raise

            try:
                apply.up(plan, rec, progress, finish=lambda r: _finish_record(r, self.topology, planned),
                         then=declared)
            except BaseException:
                def undo() -> None:
                    if lease:
                        system.abandon(lease[0])
                    nodeview.remove_lab_dir(self.name)

                run_cleanup(undo)
                raise
            system.commit(lease[0])
        return UpResult(self.name, True, len(plan.nodes), len(plan.links), len(plan.routes),
                        time.perf_counter() - t0)

    def _run_exec(self, plan: Plan, only: Sequence[str] | None = None) -> None:
        """The nodes' `exec:` commands, started as the Python API starts programs (the node's env)."""
        if any(n.exec for n in plan.nodes):
            apply.run_exec(plan, lambda node, argv, **kw: node_run.popen(self, node, argv, False, **kw), only)

    def _desired(self, plan: Plan) -> tuple[reconcile.Faults, set[str], set[tuple[str, str]], bool]:
        """The active faults as the reconcile engine takes them: (faults, nft to rewrite, rates to rewrite,
        whether the last fault change was cut off)."""
        from .. import faults

        state = faults.load_state(self.name)
        fv = faults.view(plan, state)
        if state.pending:  # a fault change was killed part-way: its rules may be half there
            faults.wait_for_cut_off_tools(plan)
            return fv, set(fv.nft), fv.shaped, True
        return fv, set(), set(), False

    def _restart_supervisor(self, plan: Plan, progress: apply.Progress | None) -> list[str]:
        """A running lab whose supervisor is gone (degraded): a new one, new views, its services again."""
        if client.alive(self.name):
            return []
        prepared = system.prepare(plan, self.topology)
        system.commit(system.bring_up(plan, self.topology, prepared, progress))
        n = sum(len(node.services) for node in self.topology.nodes.values())
        return [f"supervisor was gone: started a new one ({len(plan.nodes)} views, {n} services)"]

    def _repair(self, plan: Plan, t0: float, progress: apply.Progress | None = None) -> UpResult:
        """`up` of a running lab with the same topology: read every node back, put back what drifted from the
        plan (and the active faults), report it. Only nslab's own objects are changed (lab/reconcile.py)."""
        from .. import faults

        fv, force_nft, force_rates, pending = self._desired(plan)
        rep = reconcile.reconcile(plan, fv, None, force_nft=force_nft, force_rates=force_rates)
        restarted = self._restart_supervisor(plan, progress)
        if pending:
            state = faults.load_state(self.name)
            state.pending = False
            faults.save_state(state)
        res = UpResult(self.name, bool(rep.changes) or bool(restarted), len(plan.nodes), len(plan.links),
                       len(plan.routes), time.perf_counter() - t0, repaired=[c.line() for c in rep.changes] + restarted,
                       left_alone=[n.line() for n in rep.notes if not n.fatal])
        if rep.fatal:
            raise NslabError(
                f"lab {self.name!r} cannot be brought back to its plan: "
                + "; ".join(n.line() for n in rep.fatal)
                + (f" (repaired meanwhile: {'; '.join(res.repaired)})" if res.repaired else ""),
                f"take it down and up again: 'nslab lab down {self.name}'")
        return res

    def drift(self) -> reconcile.Report:
        """How the running lab's kernel state differs from its plan and active faults (nothing is changed)."""
        plan = self.plan
        fv, force_nft, force_rates, _ = self._desired(plan)
        return reconcile.reconcile(plan, fv, None, force_nft=force_nft, force_rates=force_rates, dry_run=True)

    def _reconcile(self, rec: st.LabState, plan: Plan, t0: float, progress: apply.Progress | None) -> UpResult:
        old = make_plan(topology_from_data(rec.topology))
        old_nodes = {n.name: n for n in old.nodes}
        new_nodes = [n for n in plan.nodes if n.name not in old_nodes]
        changed = [n.name for n in plan.nodes if n.name in old_nodes and old_nodes[n.name] != n]
        removed = [n for n in old_nodes if n not in {p.name for p in plan.nodes}]
        old_links = set(old.links)
        new_links: list[LinkPlan] = [lk for lk in plan.links if lk not in old_links]
        lost_links = [lk for lk in old.links if lk not in set(plan.links)]
        if changed or removed or lost_links:
            what = (f"node {changed[0]!r} changed" if changed else f"node {removed[0]!r} removed" if removed
                    else f"link {lost_links[0].a.node}-{lost_links[0].b.node} changed or removed")
            raise UsageError(
                f"lab {self.name!r} is up with a different topology ({what})",
                "a running lab only grows (new nodes and links are added); to change or remove, "
                f"run 'nslab lab down {self.name}' and up again",
            )
        fv, force_nft, force_rates, _ = self._desired(plan)
        old_names = list(old_nodes)

        def routes_of_the_rest() -> None:
            # The nodes that were there get the routes to the new subnets (and lose none of a user's).
            reconcile.reconcile(plan, fv, old_names, force_nft=force_nft, force_rates=force_rates)

        def then() -> None:
            routes_of_the_rest()
            names = [n.name for n in new_nodes]
            if client.alive(self.name):  # else the restart below makes every view (the exec then runs bare)
                system.grow(plan, self.topology, names, progress, before_services=lambda: self._run_exec(plan, names))
            else:
                self._run_exec(plan, names)

        apply.up(plan, rec, progress, only_nodes=[n.name for n in new_nodes], only_links=new_links,
                 only_routes=True, then=then)
        self._restart_supervisor(plan, progress)
        # Only now: a failed grow keeps the old topology on record, so the next `up` retries it.
        _finish_record(rec, self.topology, self._planned)
        st.save(rec)
        return UpResult(self.name, True, len(plan.nodes), len(plan.links), len(plan.routes),
                        time.perf_counter() - t0, len(new_nodes), len(new_links))

    def down(self, progress: apply.Progress | None = None) -> int:
        """Delete the lab's namespaces (and what runs in them). Idempotent."""
        return down_by_name(self.name, progress)[0]

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        run_cleanup(self.down)  # a Ctrl-C during the teardown must not leave half the lab behind

    # ---- growing a running lab ---------------------------------------------------------------
    def add_node(self, name: str, kind: str = "host") -> Node:
        self._plan = None  # planned again by `up` (or the next use of .plan)
        return self.topology.add_node(name, kind)

    def add_link(self, *endpoints: str, mtu: int | None = None) -> Link:
        self._plan = None
        return self.topology.add_link(*endpoints, mtu=mtu)

    # ---- seeing inside (nslab.reach, .top, .graph, .perf, .capture) -------------------------
    def reach(self, sources: Sequence[str] | None = None, targets: Sequence[str] | None = None,
              timeout: float = 2.0, proto: str = "icmp", port: int | None = None, family: int = 4,
              retry: float = 0.25, one_way: bool = True) -> ReachResult:
        """All-pairs reachability, probed concurrently (nslab.reach.reach)."""
        from ..reach import reach

        return reach(self, sources, targets, timeout=timeout, proto=proto, port=port, family=family, retry=retry,
                     one_way=one_way)

    def graph(self, fmt: str = "mermaid") -> str:
        from ..graph import graph

        return graph(self, fmt)

    def counters(self) -> dict[str, Any]:
        """One reading of every interface's counters (nslab.top.sample); rates come from two."""
        from ..top import sample

        return sample(self)

    def perf(self, a: str, b: str, udp: bool = False, seconds: float = 3.0, rate: float | str | None = None,
             warmup: float = PERF_WARMUP, *, interval: float | str | None = None, reverse: bool = False,
             streams: int | str = 1) -> PerfResult:
        """Throughput from node A to node B, or back with `reverse`, in `streams` connections (nslab.perf.perf)."""
        from ..perf import perf

        return perf(self, a, b, udp=udp, seconds=seconds, rate=rate, warmup=warmup, interval=interval,
                    reverse=reverse, streams=streams)

    def capture(self, node: str, iface: str | None = None, count: int | None = None, filter: str | None = None,
                write: str | IO[bytes] | None = None, keep: bool = False, snaplen: int = DEFAULT_SNAPLEN,
                on_packet: Callable[[Packet], None] | None = None, *, more: Sequence[str] = (),
                pcapng: bool | None = None) -> Capture:
        """A packet capture on NODE's interface (and those of `more`), as a context manager
        (nslab.capture.capture)."""
        from ..capture import capture

        return capture(self, node, iface, count=count, filter=filter, write=write, keep=keep, snaplen=snaplen,
                       on_packet=on_packet, more=more, pcapng=pcapng)

    # ---- breaking it on purpose (nslab.faults) ----------------------------------------------
    def partition(self, *groups: Sequence[str]) -> None:
        from .. import faults

        faults.partition(self, groups)

    def heal(self) -> None:
        """Remove every partition; first, undo what a fault schedule killed before its end left behind."""
        from .. import faults
        from .schedule import repair_orphan

        repair_orphan(self)
        faults.heal(self)

    def schedule(self, faults: Sequence[Mapping[str, Any]] | None = None, seed: int | None = None, *,
                 file: str | Path | None = None,
                 on_action: Callable[[Action, float], None] | None = None) -> Run:
        """A fault schedule to run on this (running) lab, as a context manager: `with lab.schedule(faults=[{"at":
        "1s", "partition": [["h1"], ["h2"]], "for": "2s"}], seed=42) as run: ...; run.wait()`. FAULTS: the
        grammar of a topology file's `faults:` (docs/schedules.md); none given: FILE's, else the lab's own
        file's. Checked against the plan now (UsageError); runs in a background thread from `with`; every fault
        it made is undone when it ends, or at the end of the block (nslab.lab.schedule.Run)."""
        from .schedule import Run, Schedule, from_file, parse

        if faults is not None:
            sched = Schedule.of(faults)
        elif file is not None:
            sched = from_file(str(file))
        elif self.topology.faults:
            t = self.topology
            sched = Schedule(parse(t.faults, t.source, t.fault_lines), t.source, dict(t.fault_lines))
        elif self.source is not None:
            sched = from_file(self.source)
        else:
            raise UsageError(f"lab {self.name!r} has no fault schedule", "give faults=[...] or file=")
        return Run(self, sched, seed, on_action)

    def link(self, a: str, b: str, up: bool, iface: str | None = None) -> None:
        from .. import faults

        faults.link_state(self, a, b, up, iface)

    def impair(self, a: str, b: str, direction: str | None = "both", *, loss: str | float | None = None,
               rate: str | int | None = None, duplicate: str | float | None = None,
               corrupt: str | float | None = None, delay: str | float | None = None,
               jitter: str | float | None = None, reorder: str | float | None = None,
               iface: str | None = None, profile: str | None = None,
               delay_correlation: str | float | None = None, distribution: str | None = None,
               loss_correlation: str | float | None = None, loss_model: str | None = None,
               reorder_correlation: str | float | None = None, gap: str | int | None = None,
               corrupt_correlation: str | float | None = None, limit: str | int | None = None,
               field_name: Callable[[str], str] | None = None) -> None:
        """Impair the link A-B in DIRECTION (nslab.faults.impair): loss, rate, duplicate, a PROFILE's values,
        and netem's delay, jitter, delay_correlation, distribution, loss_correlation, loss_model, reorder,
        reorder_correlation, gap, corrupt, corrupt_correlation, limit. E.g. impair("h1", "r1", "h1->r1",
        delay="50ms", jitter="5ms", distribution="normal")."""
        from .. import faults

        faults.impair(self, a, b, direction, loss=loss, rate=rate, duplicate=duplicate, corrupt=corrupt,
                      delay=delay, jitter=jitter, reorder=reorder, iface=iface, profile=profile,
                      delay_correlation=delay_correlation, distribution=distribution,
                      loss_correlation=loss_correlation, loss_model=loss_model,
                      reorder_correlation=reorder_correlation, gap=gap, corrupt_correlation=corrupt_correlation,
                      limit=limit, field_name=field_name)

    # ---- nodes --------------------------------------------------------------------------------
    def __getitem__(self, node: str) -> LabNode:
        self.plan.node(node)
        return LabNode(self, node)

    @property
    def nodes(self) -> list[LabNode]:
        return [LabNode(self, n.name) for n in self.plan.nodes]

    def resolve(self, argv: Sequence[str]) -> list[str]:
        """Replace words that are node names by the node's first IPv4 address (Mininet's `h1 ping h2`)."""
        return node_run.resolve(self.plan, argv)


class LabNode:
    """A node of a lab (every node is a namespace)."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab = lab
        self.name = name
        self.plan = lab.plan.node(name)

    def __repr__(self) -> str:
        return f"LabNode({self.lab.name!r}, {self.name!r}, kind={self.kind!r})"

    @property
    def kind(self) -> str:
        return self.plan.kind

    @property
    def netns(self) -> str:
        return self.plan.netns

    @property
    def addresses(self) -> list[str]:
        return self.lab.plan.addresses_of(self.name)

    @property
    def ipv4(self) -> str | None:
        return self.lab.plan.primary_ipv4(self.name)

    def namespace(self) -> Namespace:
        return Namespace.open(self.netns)

    def run(self, argv: Sequence[str], resolve: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run a program in the node (subprocess.run's keywords); words naming nodes become their addresses
        unless resolve=False."""
        return node_run.run(self.lab, self.name, argv, resolve, **kwargs)

    def popen(self, argv: Sequence[str], resolve: bool = True, **kwargs: Any) -> subprocess.Popen[Any]:
        return node_run.popen(self.lab, self.name, argv, resolve, **kwargs)
