"""The node keys `files`, `private` and `services` of a topology file: their data and their parsing (pure).

The loader calls `parse_node_keys` for each node and `check_services` once all nodes are read; every error
names the file, line and field (exit 2) before anything is created.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NoReturn, Protocol

import yaml

# What a node may not take private or write a file over: kernel file systems, and what nslab writes itself.
RESERVED = ("/proc", "/sys", "/dev")
RESERVED_FILES = ("/etc/hosts", "/etc/hostname")
# The keys, readiness kinds and restart policies are read from schema.json, the one place they are written.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SERVICE = json.loads(resources.files(__package__).joinpath("schema.json").read_text())["$defs"]["service"]
SERVICE_KEYS = tuple(_SERVICE["properties"])
READY_KINDS = tuple(o["required"][0] for o in _SERVICE["properties"]["ready"]["oneOf"])
RESTART = tuple(_SERVICE["properties"]["restart"]["enum"])
DEFAULT_TIMEOUT = 30.0
MAX_FILE_BYTES = 1 << 20
_PATH = re.compile(r"(/[A-Za-z0-9._@+=-]+)+")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_AFTER = re.compile(r"(?:([a-z][a-z0-9-]*)/)?([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass
class ServiceSpec:
    name: str
    cmd: list[str] | str  # a string runs with sh -c
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    ready: dict[str, Any] | None = None  # {"tcp": PORT} | {"udp": PORT} | {"cmd": ...} | {"log": REGEX}
    timeout: float = DEFAULT_TIMEOUT
    restart: str = "no"
    after: list[str] = field(default_factory=list)  # "node/name"
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def argv(self) -> list[str]:
        return ["/bin/sh", "-c", self.cmd] if isinstance(self.cmd, str) else list(self.cmd)

    def to_data(self) -> dict[str, Any]:
        return {"name": self.name, "cmd": self.cmd, "env": self.env, "cwd": self.cwd, "ready": self.ready,
                "timeout": self.timeout, "restart": self.restart, "after": self.after}

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> ServiceSpec:
        return cls(**{k: d[k] for k in SERVICE_KEYS if k in d})


class _Loader(Protocol):
    source: str

    def fail(self, node: yaml.Node | int, path: str, message: str, hint: str | None = None) -> NoReturn: ...
    def mapping(self, node: yaml.Node, path: str, allowed: tuple[str, ...], what: str,
                hint: str | None = None) -> dict[str, tuple[yaml.Node, yaml.Node]]: ...
    def string(self, node: yaml.Node, path: str) -> str: ...
    def integer(self, node: yaml.Node, path: str, example: str, name: str | None = None) -> int: ...


def _show(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else "a list" if isinstance(
        node, yaml.SequenceNode) else "a mapping"


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def node_path(ld: _Loader, node: yaml.Node, path: str, what: str) -> str:
    """An absolute, normalised path a node sees, outside the kernel's file systems."""
    text = ld.string(node, path)
    hint = "write an absolute path of letters, digits and . _ - @ + =, e.g. /var/lib/app (no '..', no trailing '/')"
    if not _PATH.fullmatch(text) or os.path.normpath(text) != text or "/../" in text + "/" or "/./" in text + "/":
        ld.fail(node, path, f"{what} {text!r} is not an absolute, normalised path", hint)
    for top in RESERVED:
        if text == top or text.startswith(top + "/"):
            ld.fail(node, path, f"{what} {text!r} is under {top}, which the kernel provides",
                    "choose a path outside /proc, /sys and /dev")
    return text


def parse_node_keys(ld: _Loader, fields: Mapping[str, tuple[yaml.Node, yaml.Node]], path: str,
                    target: Any) -> None:
    """Fill TARGET's (a model.Node) files, private and services from the node's fields."""
    if "private" in fields:
        vnode = fields["private"][1]
        if not isinstance(vnode, yaml.SequenceNode):
            ld.fail(vnode, f"{path}.private", "private must be a list of directories", "write private: [/run, /tmp]")
        seen: dict[str, int] = {}
        for i, item in enumerate(vnode.value):
            p = node_path(ld, item, f"{path}.private[{i}]", "private directory")
            if p in seen:
                ld.fail(item, f"{path}.private[{i}]", f"{p} is listed twice (first on line {seen[p]})",
                        "list each directory once")
            if p in ("/etc",) or p in RESERVED_FILES:
                ld.fail(item, f"{path}.private[{i}]", f"{p} cannot be private (nslab writes /etc/hosts there)",
                        "make a directory under it private, e.g. /etc/app")
            seen[p] = _line(item)
        target.private = list(seen)
    if "files" in fields:
        target.files = _files(ld, fields["files"][1], f"{path}.files")
    if "services" in fields:
        vnode = fields["services"][1]
        if not isinstance(vnode, yaml.SequenceNode):
            ld.fail(vnode, f"{path}.services", "services must be a list",
                    "write services: [{name: web, cmd: [busybox, httpd, -f, -p, '80'], ready: {tcp: 80}}]")
        node_name = path.split(".", 1)[1]
        out: list[ServiceSpec] = []
        for i, item in enumerate(vnode.value):
            svc = _service(ld, item, f"{path}.services[{i}]", node_name)
            if any(s.name == svc.name for s in out):
                ld.fail(item, f"{path}.services[{i}].name", f"duplicate service {svc.name!r} in this node",
                        "give each service of a node its own name")
            out.append(svc)
        target.services = out


def _files(ld: _Loader, vnode: yaml.Node, path: str) -> dict[str, str]:
    hint = "write files: {/etc/app.conf: \"text\"} or files: {/etc/app.conf: {file: app.conf}}"
    entries = ld.mapping(vnode, path, (), "files", hint)
    base = os.path.dirname(os.path.abspath(ld.source)) if os.path.isfile(ld.source) else None
    out: dict[str, str] = {}
    for key, (knode, value) in entries.items():
        p = node_path(ld, knode, f"{path}.{key}", "file")
        if p in RESERVED_FILES:
            ld.fail(knode, f"{path}.{key}", f"{p} is written by nslab (every lab node is in it)",
                    "write your own file elsewhere and point the program at it")
        if isinstance(value, yaml.ScalarNode):
            out[p] = ld.string(value, f"{path}.{key}")
            continue
        sub = ld.mapping(value, f"{path}.{key}", ("file",), "a file", hint)
        if "file" not in sub:
            ld.fail(value, f"{path}.{key}", "missing required key 'file'", hint)
        fnode = sub["file"][1]
        rel = ld.string(fnode, f"{path}.{key}.file")
        if base is None:
            ld.fail(fnode, f"{path}.{key}.file", "file: needs a topology read from a file (its directory)",
                    "give the text inline")
        full = os.path.realpath(os.path.join(base, rel))
        if os.path.isabs(rel) or not full.startswith(os.path.realpath(base) + os.sep):
            ld.fail(fnode, f"{path}.{key}.file", f"{rel!r} is outside the topology file's directory {base}",
                    "give a path relative to the topology file, inside its directory (no '..' out of it)")
        try:
            st = os.stat(full)  # never open a FIFO or a device: a read would block (or never end)
            if not stat.S_ISREG(st.st_mode):
                ld.fail(fnode, f"{path}.{key}.file", f"{rel!r} is not a regular file",
                        "point file: at a regular file (not a FIFO, device, socket or directory)")
            if st.st_size > MAX_FILE_BYTES:
                ld.fail(fnode, f"{path}.{key}.file", f"{rel!r} is larger than {MAX_FILE_BYTES} bytes",
                        "nodes' files are configuration: keep them small")
            fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # swapped for a FIFO since: no hang
            with open(fd, encoding="utf-8") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    ld.fail(fnode, f"{path}.{key}.file", f"{rel!r} is not a regular file",
                            "point file: at a regular file (not a FIFO, device, socket or directory)")
                out[p] = f.read(MAX_FILE_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            ld.fail(fnode, f"{path}.{key}.file", f"cannot read {rel!r}: {getattr(exc, 'strerror', None) or exc}",
                    "check the path (relative to the topology file) and that it is UTF-8 text")
    return out


def _command(ld: _Loader, vnode: yaml.Node, path: str) -> list[str] | str:
    if isinstance(vnode, yaml.SequenceNode):
        argv = [ld.string(v, f"{path}[{j}]") for j, v in enumerate(vnode.value)]
        if argv:
            return argv
    elif isinstance(vnode, yaml.ScalarNode) and vnode.value.strip():
        return ld.string(vnode, path)
    ld.fail(vnode, path, "expected a command: a non-empty argv list or a string (run by sh -c)",
            "write cmd: [prog, --flag, value] or cmd: \"prog --flag value\"")


def _service(ld: _Loader, item: yaml.Node, path: str, node: str) -> ServiceSpec:
    hint = "a service is {name: NAME, cmd: [...], ready: {tcp: PORT}, after: [other], ...}"
    f = ld.mapping(item, path, SERVICE_KEYS, "a service", hint)
    for key in ("name", "cmd"):
        if key not in f:
            ld.fail(item, path, f"missing required key {key!r}", hint)
    name = ld.string(f["name"][1], f"{path}.name")
    if not _NAME.fullmatch(name):
        ld.fail(f["name"][1], f"{path}.name", f"service name {name!r} is not valid",
                "use 1 to 64 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
    svc = ServiceSpec(name, _command(ld, f["cmd"][1], f"{path}.cmd"))
    svc.lines = {k: _line(kn) for k, (kn, _) in f.items()}
    svc.lines[""] = _line(item)
    if "env" in f:
        env = ld.mapping(f["env"][1], f"{path}.env", (), "env", "write env: {NAME: value}")
        for k, (kn, _) in env.items():  # the rule of the node's env (checks.py): a name a shell can export
            if not _ENV_NAME.fullmatch(k):
                ld.fail(kn, f"{path}.env", f"invalid environment variable name {k!r}",
                        "use letters, digits and '_', not starting with a digit, e.g. ETCD_NAME")
        svc.env = {k: ld.string(v, f"{path}.env.{k}") for k, (_, v) in env.items()}
    if "cwd" in f:
        svc.cwd = node_path(ld, f["cwd"][1], f"{path}.cwd", "cwd")
    if "ready" in f:
        svc.ready = _ready(ld, f["ready"][1], f"{path}.ready")
    if "timeout" in f:
        tnode = f["timeout"][1]
        text = str(tnode.value) if isinstance(tnode, yaml.ScalarNode) and tnode.style is None else ""
        if not _NUMBER.fullmatch(text) or not 0 < float(text) <= 3600:
            ld.fail(tnode, f"{path}.timeout", "timeout must be a number of seconds in (0, 3600], got "
                    f"{_show(tnode)}", "write timeout: 30 or timeout: 2.5")
        svc.timeout = float(text)
    if "restart" in f:
        svc.restart = ld.string(f["restart"][1], f"{path}.restart")
        if svc.restart not in RESTART:
            ld.fail(f["restart"][1], f"{path}.restart", f"restart must be one of {', '.join(RESTART)}, "
                    f"got {svc.restart!r}", "write restart: on-failure (or no)")
    if "after" in f:
        anode = f["after"][1]
        if not isinstance(anode, yaml.SequenceNode):
            ld.fail(anode, f"{path}.after", "after must be a list of services", "write after: [db, h1/web]")
        for j, a in enumerate(anode.value):
            text = ld.string(a, f"{path}.after[{j}]")
            m = _AFTER.fullmatch(text)
            if m is None:
                ld.fail(a, f"{path}.after[{j}]", f"{text!r} is not a service", "write NAME or NODE/NAME")
            svc.after.append(f"{m.group(1) or node}/{m.group(2)}")
    return svc


def _ready(ld: _Loader, vnode: yaml.Node, path: str) -> dict[str, Any]:
    hint = "write ready: {tcp: 8080}, {udp: 53}, {cmd: \"test -S /run/app.sock\"} or {log: \"listening on\"}"
    f = ld.mapping(vnode, path, READY_KINDS, "ready", hint)
    if len(f) != 1:
        ld.fail(vnode, path, "ready names exactly one of: " + ", ".join(READY_KINDS), hint)
    kind, (_, v) = next(iter(f.items()))
    if kind in ("tcp", "udp"):
        port = ld.integer(v, f"{path}.{kind}", f"{kind}: 8080", "port")
        if not 1 <= port <= 65535:
            ld.fail(v, f"{path}.{kind}", f"port {port} is out of range", "a port is 1..65535")
        return {kind: port}
    if kind == "cmd":
        return {"cmd": _command(ld, v, f"{path}.cmd")}
    text = ld.string(v, f"{path}.log")
    try:
        re.compile(text)
    except re.error as exc:
        ld.fail(v, f"{path}.log", f"not a valid regular expression: {exc}", "check the brackets and escapes")
    if not text:
        ld.fail(v, f"{path}.log", "the regular expression is empty", hint)
    return {"log": text}


def check_services(ld: _Loader, nodes: Mapping[str, Any]) -> None:
    """Every `after` names a service of the file, and `after` has no cycle."""
    where: dict[str, tuple[ServiceSpec, str]] = {}
    for node in nodes.values():
        for i, svc in enumerate(getattr(node, "services", [])):
            where[f"{node.name}/{svc.name}"] = (svc, f"nodes.{node.name}.services[{i}]")
    for key, (svc, path) in where.items():
        for j, a in enumerate(svc.after):
            if a not in where:
                close = [k for k in where if k.split("/")[1] == a.split("/")[1]]
                ld.fail(svc.lines.get("after", svc.lines.get("", 1)), f"{path}.after[{j}]",
                        f"no service {a!r} in the file",
                        (f"did you mean {close[0]!r}? " if close else "") + f"services: {', '.join(where) or 'none'}")
            if a == key:
                ld.fail(svc.lines.get("after", 1), f"{path}.after[{j}]", f"service {key} waits for itself",
                        "remove it from its own after")
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(key: str, trail: list[str]) -> None:
        state[key] = 1
        for a in where[key][0].after:
            if state.get(a) == 1:
                cycle = [*trail[trail.index(a):], a] if a in trail else [key, a]
                svc, path = where[key]
                ld.fail(svc.lines.get("after", 1), f"{path}.after", "a cycle in after: " + " -> ".join(cycle),
                        "a service cannot wait, directly or not, for itself; remove one of these")
            if state.get(a) is None:
                visit(a, [*trail, a])
        state[key] = 2

    for key in where:
        if state.get(key) is None:
            visit(key, [key])


def start_order(nodes: Mapping[str, Any]) -> list[tuple[str, ServiceSpec]]:
    """(node, service) in an order where every service comes after those it waits for (file order otherwise)."""
    specs = {f"{n.name}/{s.name}": (n.name, s) for n in nodes.values() for s in getattr(n, "services", [])}
    done: dict[str, None] = {}

    def add(key: str) -> None:
        if key in done:
            return
        for a in specs[key][1].after:
            if a in specs:
                add(a)
        done[key] = None

    for key in specs:
        add(key)
    return [specs[k] for k in done]
