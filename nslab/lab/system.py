"""The steps of `up` and `down` that give a lab its system (docs/nodes.md, docs/services.md): `prepare` (before
anything is created), `start_supervisor`, `create_views`, `start_services`, `commit`; `stop_supervisor` at down.

`Lab.up` runs start_supervisor .. start_services inside apply.up's all-or-nothing, and commits after it: a
failure (a service never ready) stops the supervisor and rolls the lab back; a killed `up` leaves a
supervisor without its lease, which stops its services and exits by itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import NslabError, UsageError
from . import client, subst
from . import nodeview as nv
from .model import TopologyData
from .plan import Plan
from .svcspec import ServiceSpec, start_order

Progress = Callable[[str, int, int], None]
_CHUNK = 64  # nodes per view.create request

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def prepare(plan: Plan, topology: TopologyData) -> dict[str, nv.NodeFiles]:
    """Each node's files and mounts, checked against the host's file system before anything is created."""
    check_subst(plan, topology)  # `${...}` in services and files: refused now, not half-way through up
    hosts = nv.hosts_files(plan)
    shared: dict[str, str] = {}  # text -> the one file of it (nodes on the same segments see the same)
    out = {}
    for n in plan.nodes:
        node = topology.nodes.get(n.name)
        private = node.private if node is not None else []
        files = expand_files(plan, topology, n.name) if node is not None else {}
        text = hosts[n.name]
        src = shared.get(text)
        first = src is None
        if src is None:
            src = shared[text] = os.path.join(nv.lab_dir(plan.lab), "hosts", str(len(shared)))
        try:
            out[n.name] = nv.plan_node(plan.lab, n.name, None, private, files, hosts_src=src)
            if first:
                out[n.name].writes.append((src, text, 0o644))
        except ValueError as exc:
            field = getattr(exc, "field", None)  # nv.PathError: the key that holds the path
            key = field.split(".")[0].split("[")[0] if field else ""
            line = (node.lines.get(key) or node.lines.get("")) if node is not None else None
            where = f"{topology.source}:{line}: " if line else f"{topology.source}: "
            raise UsageError(f"{where}nodes.{n.name}{'.' + field if field else ''}: {exc}",
                             "private dirs and files must be real paths; a missing one needs an existing parent "
                             "directory other than / (or a private dir to hold it)") from None
    return out


def start_supervisor(lab: str) -> client.Client:
    """The lab's supervisor, started; returns its lease."""
    return client.start(lab)


def create_views(lease: client.Client, plan: Plan, prepared: dict[str, nv.NodeFiles],
                 only: Sequence[str] | None = None, progress: Progress | None = None) -> None:
    report = progress or (lambda phase, done, total: None)
    nodes = [n for n in plan.nodes if only is None or n.name in only]
    for n in nodes:
        nv.write_all(prepared[n.name].writes)
    for i in range(0, len(nodes), _CHUNK):
        chunk = nodes[i:i + _CHUNK]
        lease.call("view.create", timeout=120, nodes=[
            {"node": n.name, "netns": n.netns, "mounts": [m.to_json() for m in prepared[n.name].mounts]}
            for n in chunk])
        report("views", i + len(chunk), len(nodes))


def expand_service(plan: Plan, topology: TopologyData, node: str, svc: ServiceSpec) -> tuple[list[str], dict[str, str]]:
    """SVC's argv and env with `${...}` expanded as the node's env and exec are (nslab.lab.subst); an unknown
    name is exit 2 naming the file, line and field (`prepare` calls this before anything exists)."""
    ctx = plan.subst_context(node)
    i = next(k for k, s in enumerate(topology.nodes[node].services) if s is svc)
    path = f"nodes.{node}.services[{i}]"

    def expand(text: str, field: str) -> str:
        try:
            return subst.expand(text, ctx)
        except subst.SubstError as exc:
            topology.fail(f"{path}.{field}", exc.message, exc.hint,
                          svc.lines.get(field.split(".")[0]) or svc.lines.get(""))

    argv = svc.argv
    if isinstance(svc.cmd, str):
        argv = [*argv[:-1], expand(argv[-1], "cmd")]
    else:
        argv = [expand(a, f"cmd[{j}]") for j, a in enumerate(argv)]
    return argv, {k: expand(v, f"env.{k}") for k, v in svc.env.items()}


def expand_files(plan: Plan, topology: TopologyData, node: str) -> dict[str, str]:
    """NODE's `files:` text (inline or read from `file:`) with `${...}` expanded as its env is; an unknown name
    is exit 2 naming the field (nodes.NODE.files.PATH)."""
    ctx = plan.subst_context(node)
    spec = topology.nodes[node]
    out = {}
    for path, text in spec.files.items():
        try:
            out[path] = subst.expand(text, ctx)
        except subst.SubstError as exc:
            topology.fail(f"nodes.{node}.files.{path}", exc.message, exc.hint,
                          spec.lines.get("files") or spec.lines.get(""))
    return out


def check_subst(plan: Plan, topology: TopologyData) -> None:
    """Every `${...}` of the services and files expands (pure: `lab validate` runs it, and `prepare`)."""
    for name, spec in topology.nodes.items():
        for svc in spec.services:
            expand_service(plan, topology, name, svc)
        expand_files(plan, topology, name)


def service_specs(plan: Plan, topology: TopologyData, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """What the supervisor runs, in dependency order: the file's services with their full environment."""
    out = []
    for node, svc in start_order(topology.nodes):
        if only is not None and node not in only:
            continue
        env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "HOME": os.environ.get("HOME", "/root"),
               "LANG": os.environ.get("LANG", "C.UTF-8"), "PYTHONUNBUFFERED": "1",
               "NSLAB_LAB": plan.lab, "NSLAB_NODE": node}
        # Merge point with the node keys of issue 12 §1: a node's own `env`, when the model has it.
        env.update(plan.node(node).env)  # the node's `env:`, `${...}` expanded by planning
        argv, own_env = expand_service(plan, topology, node, svc)
        env.update(own_env)
        out.append({"node": node, "name": svc.name, "cmd": argv, "env": env, "cwd": svc.cwd or "/",
                    "ready": svc.ready, "timeout": svc.timeout, "restart": svc.restart, "after": svc.after,
                    "log": nv.log_path(plan.lab, node, svc.name)})
    return out


def start_services(conn: client.Client, specs: list[dict[str, Any]], progress: Progress | None = None) -> None:
    """Start the services in dependency order and wait until each is ready (or one fails: NslabError with its
    log's last lines)."""
    if not specs:
        return
    report = progress or (lambda phase, done, total: None)
    ready: set[str] = set()

    def event(msg: dict[str, Any]) -> None:
        if msg.get("state") in ("ready", "running"):
            ready.add(f"{msg['node']}/{msg['name']}")
            report("services", len(ready), len(specs))

    report("services", 0, len(specs))
    budget = sum(float(s["timeout"]) for s in specs) + 30
    try:
        conn.call("svc.up", services=specs, events=event, timeout=budget)
    except NslabError as exc:
        details = getattr(exc, "details", {})
        key = details.get("service")
        if not key:
            raise
        # The log goes with the rollback: its last lines are shown here, on real lines.
        tail = details.get("log_tail") or ""
        body = ["    " + line for line in tail.splitlines()] or ["    (empty)"]
        raise NslabError(f"lab {conn.lab}: {exc.message}", "the lab was rolled back (its logs too); fix the "
                         "service (command, ready, timeout) and run up again",
                         lines=[f"  last lines of {key}'s log:", *body]) from None


def commit(lease: client.Client) -> None:
    """The `up` succeeded: the supervisor outlives this process from now on."""
    try:
        lease.call("up.commit", timeout=30)
    finally:
        lease.close()


def abandon(lease: client.Client) -> None:
    """The `up` failed: the supervisor stops its services and exits (the lease's end), waited for here."""
    with contextlib.suppress(OSError):
        lease.sock.shutdown(2)
    if not lease.wait_exit(10.0):
        lease.kill()
        lease.wait_exit(5.0)
    lease.close()


def bring_up(plan: Plan, topology: TopologyData, prepared: dict[str, nv.NodeFiles],
             progress: Progress | None = None, before_services: Callable[[], None] | None = None) -> client.Client:
    """start_supervisor, create_views, BEFORE_SERVICES (the nodes' `exec:`, which then sees the views),
    start_services; on any failure the supervisor is gone again."""
    lease = start_supervisor(plan.lab)
    try:
        create_views(lease, plan, prepared, progress=progress)
        if before_services is not None:
            before_services()
        start_services(lease, service_specs(plan, topology), progress)
    except BaseException:
        abandon(lease)
        raise
    return lease


def grow(plan: Plan, topology: TopologyData, new_nodes: Sequence[str], progress: Progress | None = None,
         before_services: Callable[[], None] | None = None) -> None:
    """Views, BEFORE_SERVICES and services of nodes a running lab gained (its supervisor must be up)."""
    prepared = prepare(plan, topology)
    with client.Client.connect(plan.lab) as c:
        create_views(c, plan, prepared, only=new_nodes, progress=progress)
        if before_services is not None:
            before_services()
        start_services(c, service_specs(plan, topology, only=new_nodes), progress)


def stop_supervisor(lab: str, grace: float = 5.0) -> bool:
    """`down`: the services get SIGTERM, then SIGKILL after GRACE; the supervisor exits (its pid namespace and
    views with it). Returns whether one was running."""
    return client.stop(lab, grace)
