"""A node's view of the system (docs/nodes.md): its hostname (a UTS namespace), and a mount namespace cut from
a per-lab template with a fresh /sys of its netns, /proc of the lab's pid namespace, /etc/hosts and
/etc/hostname of the lab, its `private` directories and its `files`.

This module holds the paths under the lab's directory, the rendering of hosts files, the planning of the
mounts (which paths get a bind, which need an overlay on an existing directory so that a missing path can
be made without writing to the host), and re-exports the few system calls the supervisor and the spawn need
(nslab.kernel.nsops). Only the standard library and that module are imported: the supervisor is small.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan import Plan

LABS_DIR = "/run/nslab/labs"


# ---- where a lab keeps its files ----------------------------------------------------------------------
def lab_dir(lab: str) -> str:
    """The lab's directory: nodes' hosts files, private dirs, files, overlays, service logs."""
    if not lab or "/" in lab or lab in (".", ".."):
        raise ValueError(f"bad lab name {lab!r}")
    return os.path.join(LABS_DIR, lab)


def node_dir(lab: str, node: str) -> str:
    return os.path.join(lab_dir(lab), "nodes", node)


def log_path(lab: str, node: str, service: str) -> str:
    return os.path.join(lab_dir(lab), "logs", node, f"{service}.log")


def remove_lab_dir(lab: str) -> None:
    """Delete the lab's directory (after its supervisor and views are gone). Idempotent."""
    shutil.rmtree(lab_dir(lab), ignore_errors=True)


# ---- /etc/hosts -----------------------------------------------------------------------------------------
def hosts_files(plan: Plan) -> dict[str, str]:
    """Per node, its /etc/hosts: every lab node with an address, by the address on a segment the two share
    (when there is one), else its first; IPv4 then IPv6. A node without an address maps to 127.0.1.1."""
    bare: dict[tuple[str, str], tuple[str | None, str | None]] = {}  # (node, ifname) -> (v4, v6), parsed once
    for link in plan.links:
        for end in (link.a, link.b):
            ips = [ipaddress.ip_interface(c) for c in end.addresses]
            bare[(end.node, end.ifname)] = (next((str(i.ip) for i in ips if i.version == 4), None),
                                            next((str(i.ip) for i in ips if i.version == 6), None))
    seg_of: dict[str, dict[str, tuple[str | None, str | None]]] = {}  # node -> segment -> its (v4, v6) there
    for seg in plan.segments:
        for node, ifname in seg.members:
            pair = bare.get((node, ifname), (None, None))
            if pair != (None, None):
                seg_of.setdefault(node, {}).setdefault(seg.name, pair)
    first = {node: next(iter(segs.values())) for node, segs in seg_of.items()}
    head = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    out: dict[str, str] = {}
    by_segments: dict[frozenset[str], str] = {}  # nodes on the same segments get the same file: made once
    for me in plan.nodes:
        mine = frozenset(seg_of.get(me.name, {}))
        text = by_segments.get(mine)
        if text is None:
            lines = [head]
            for other, segs in seg_of.items():
                pair = next((segs[s] for s in segs if s in mine), first[other])
                lines.extend(f"{ip}\t{other}\n" for ip in pair if ip)
            text = by_segments[mine] = "".join(lines)
        out[me.name] = text if me.name in seg_of else text + f"127.0.1.1\t{me.name}\n"
    return out


# ---- the mounts of one view ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Mount:
    """One mount of a view, done in order by the supervisor: `overlay` (source = upper dir; lower = target),
    `bind` (source = a file or directory under the lab's directory)."""

    kind: str
    source: str
    target: str

    def to_json(self) -> list[str]:
        return [self.kind, self.source, self.target]


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


@dataclass
class NodeFiles:
    """What `create_views` writes for a node before its view is made, and the mounts that make the view."""

    writes: list[tuple[str, str | None, int]]  # (host path, text or None for a directory, mode)
    mounts: list[Mount]


class PathError(ValueError):
    """plan_node refused a path; FIELD is the node's key that holds it (`files./etc/x`, `private[0]`)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def plan_node(lab: str, node: str, hosts: str | None, private: Sequence[str], files: Mapping[str, str],
              exists: Callable[[str], bool] = os.path.lexists,
              is_symlink: Callable[[str], bool] = os.path.islink, hosts_src: str | None = None) -> NodeFiles:
    """The writes and mounts of NODE's view. Paths are absolute and normalised (the loader checks them).

    - a private dir is a directory of the lab bound over the path; a missing path inside another private dir
      is made there; otherwise the nearest existing ancestor gets an overlay whose upper dir (in the lab's
      directory) holds what is made, so nothing is ever written to the host's file system;
    - a file under a private dir is written into it; an existing path gets the file bound over it; a missing
      one is written into an overlay as above.
    Raises ValueError for a path through a symlink (the view would not be where the file says)."""
    base = node_dir(lab, node)
    writes: list[tuple[str, str | None, int]] = []
    overlays: dict[str, str] = {}  # ancestor -> upper dir
    binds: list[Mount] = []
    priv = sorted(private, key=lambda p: (p.count("/"), p))  # shallow first

    def check_links(path: str) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if not exists(p):
                return
            if is_symlink(p):
                raise ValueError(f"{p} is a symbolic link; give the path it points to")

    def host_path_of(path: str, enclosing: Sequence[str]) -> str | None:
        """Where PATH lives on the host when it is inside one of ENCLOSING (private dirs), deepest first."""
        for top in sorted(enclosing, key=len, reverse=True):
            if _under(path, top) and path != top:
                return os.path.join(base, "fs", top.lstrip("/"), os.path.relpath(path, top))
        return None

    def made_missing(path: str, text: str | None, mode: int, enclosing: Sequence[str]) -> None:
        """Make a missing PATH (a dir if text is None) inside a private dir or an overlay."""
        inside = host_path_of(path, enclosing)
        if inside is not None:
            writes.append((inside, text, mode))
            return
        anc = os.path.dirname(path)
        while anc != "/" and not exists(anc):
            anc = os.path.dirname(anc)
        if anc == "/":
            raise ValueError(f"cannot make {path}: its top directory /{path.split('/')[1]} does not exist")
        top = next((o for o in overlays if _under(anc, o)), None)
        if top is None:
            for o in [o for o in overlays if _under(o, anc)]:  # a shallower overlay replaces deeper ones
                del overlays[o]
            top = anc
            overlays[top] = os.path.join(base, "upper", top.lstrip("/"))
        writes.append((os.path.join(overlays[top], os.path.relpath(path, top)), text, mode))

    for i, p in enumerate(priv):
        try:
            check_links(p)
            src = os.path.join(base, "fs", p.lstrip("/"))
            writes.append((src, None, 0o1777 if p == "/tmp" else 0o755))
            if not exists(p):
                made_missing(p, None, 0o755, priv[:i])
        except PathError:
            raise
        except ValueError as exc:
            raise PathError(str(exc), f"private[{list(private).index(p)}]") from None
        binds.append(Mount("bind", src, p))
    # HOSTS_SRC: a hosts file shared by the nodes that see the same one (written once by the caller).
    binds.append(Mount("bind", hosts_src or os.path.join(base, "etc", "hosts"), "/etc/hosts"))
    binds.append(Mount("bind", os.path.join(base, "etc", "hostname"), "/etc/hostname"))
    if hosts_src is None:
        writes.append((os.path.join(base, "etc", "hosts"), hosts or "", 0o644))
    writes.append((os.path.join(base, "etc", "hostname"), node + "\n", 0o644))
    for path, text in sorted(files.items()):
        try:
            check_links(path)
            inside = host_path_of(path, priv)
            if inside is not None:
                writes.append((inside, text, 0o644))
            elif exists(path):
                src = os.path.join(base, "files", path.lstrip("/"))
                writes.append((src, text, 0o644))
                binds.append(Mount("bind", src, path))
            else:
                made_missing(path, text, 0o644, priv)
        except ValueError as exc:
            raise PathError(str(exc), f"files.{path}") from None
    mounts = [Mount("overlay", upper, target) for target, upper in sorted(overlays.items())]
    return NodeFiles(writes, mounts + binds)


def write_all(writes: Sequence[tuple[str, str | None, int]]) -> None:
    """Make the directories and files of plan_node (all under the lab's directory)."""
    for path, text, mode in writes:
        if not path.startswith(LABS_DIR + "/"):
            raise ValueError(f"refusing to write outside {LABS_DIR}: {path}")
        if text is None:
            os.makedirs(path, mode=0o755, exist_ok=True)
            os.chmod(path, mode)
            continue
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        with open(fd, "w") as f:
            f.write(text)
        if mode & 0o7000:  # the umask cannot take these away, but open's mode never sets them
            os.chmod(path, mode)


