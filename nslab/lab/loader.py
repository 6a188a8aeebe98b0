"""The YAML loader: a topology file's bytes to a checked `Topology` (pure: reads the file, nothing else).

Every error is a `UsageError` whose message reads `FILE:LINE: FIELD: what is wrong` and whose hint says
the fix. Line numbers come from composing the YAML ourselves (`yaml.compose` keeps a mark on every node);
`yaml.safe_load` would throw them away, and silently keep the last of two duplicate keys.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ..errors import NotFoundError, UsageError
from ..names import NODE_NAME_MAX
from . import svcspec
from .checks import closest
from .model import CHECK_KINDS, Between, Check, Command, Endpoint, Link, Node, Pools, StaticRoute
from .spec import Topology

MAX_FILE_BYTES = 1 << 20  # a topology file is text a person writes: 1 MiB holds ~30000 nodes and links
MAX_DEPTH = 32  # the deepest field is 5 levels down (links[i].impair.A->B.loss); YAML nests recursively
MAX_EXPANDED = 500_000  # YAML nodes after expanding aliases: a few KB of '*a' must not become billions



def json_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of the file; editors and CI can check files with it."""
    data: dict[str, Any] = json.loads(resources.files(__package__).joinpath("schema.json").read_text())
    return data


# The keys each mapping of the file accepts, in the order error hints list them: read from the schema, the
# one place they are written (tests hold the schema's enums to the model's KINDS, ROUTING, CHECK_KINDS).
def _object(schema: dict[str, Any]) -> dict[str, Any]:
    """The mapping form of a field (itself, or the object branch of its oneOf)."""
    if "properties" in schema:
        return schema
    return next(o for o in schema["oneOf"] if o.get("type") == "object")


def _keys(schema: dict[str, Any]) -> tuple[str, ...]:
    return tuple(_object(schema)["properties"])


_SCHEMA = json_schema()
_TOP = _SCHEMA["properties"]
_CHECKS = {c["required"][0]: c for c in _TOP["checks"]["items"]["oneOf"]}  # check kind -> its form
TOP_KEYS = _keys(_SCHEMA)
POOL_KEYS = _keys(_TOP["pools"])
NODE_KEYS = _keys(_TOP["nodes"]["additionalProperties"])
DEFAULT_KEYS = _keys(_TOP["defaults"])  # what a node inherits: its keys but group and count
GROUP_KEYS = _keys(_TOP["groups"]["additionalProperties"])  # members, then DEFAULT_KEYS
ROUTE_KEYS = _keys(_SCHEMA["$defs"]["routes"]["items"])
MAX_REPLICAS = 1000  # `count`: a cluster of a few, or a few hundred; more is a typo (or --topo)
LINK_KEYS = _keys(_TOP["links"]["items"])
ENDPOINT_KEYS = _keys(_SCHEMA["$defs"]["endpoint"])
IMPAIR_KEYS = _keys(_SCHEMA["$defs"]["impairments"])
BETWEEN_KEYS = _keys(_SCHEMA["$defs"]["between"])
CHECK_KEYS = (*CHECK_KINDS, *dict.fromkeys(k for c in _CHECKS.values() for k in c["properties"] if k not in _CHECKS))
PORT_CHECK_KEYS = _keys(_CHECKS["port_open"]["properties"]["port_open"])

_DECIMAL = re.compile(r"-?([0-9]+)")  # ASCII digits only ([0-9], not \d, which takes any script's digits)
_YAML11_INT_FORMS = (  # the forms of PyYAML's int resolver, with what they mean
    (re.compile(r"[-+]?0b[0-1_]+"), "binary"), (re.compile(r"[-+]?0x[0-9a-fA-F_]+"), "hexadecimal"),
    (re.compile(r"[-+]?0[0-7_]+"), "octal"), (re.compile(r"[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+"), "base 60"),
    (re.compile(r"[-+]?(0|[1-9][0-9_]*)"), "a signed or '_'-separated number"),
)
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"


def load_file(path: str | Path) -> Topology:
    """Read and validate a topology file."""
    return parse_file(path).validate()


def parse_file(path: str | Path) -> Topology:
    """Read a topology file into a Topology, checking its YAML and keys only: the rules and the addressing
    are checked by `validate`, or by planning it (`make_plan`), which `Lab.from_file` does once."""
    source = str(path)
    data = read_file(path, source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(
            f"{source}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})", "save the file as UTF-8"
        ) from None
    return parse_text(text, source)


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int, source: str) -> UsageError:
    kind = next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")
    return UsageError(f"{source}: is {kind}, not a topology file",
                      "give the path of a YAML file (to use a generated topology, save it to a file first)")


def _too_big(source: str, size: int | None) -> UsageError:
    got = f" ({size} bytes)" if size is not None else ""
    return UsageError(f"{source}: too large for a topology file{got}; the limit is {MAX_FILE_BYTES} bytes",
                      "split the lab, or use a built-in topology (--topo) for very large ones")


def read_file(path: str | Path, source: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. A FIFO, a device or /dev/zero never blocks nor
    reads forever: the type is checked before opening, the open does not wait (O_NONBLOCK), the type is
    checked again on the open file (the path may have changed in between), and the read is bounded."""
    def cannot(exc: OSError) -> UsageError:
        return UsageError(f"{source}: cannot read: {exc.strerror or exc}", "check the path and its permissions")

    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(f"{source}: no such topology file", "check the path") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise (cannot(exc) if isinstance(exc, OSError) else UsageError(
            f"{source}: not a valid path", "check the path")) from None
    if not stat.S_ISREG(before.st_mode):
        raise _not_regular(before.st_mode, source)
    if before.st_size > limit:
        raise _too_big(source, before.st_size)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise cannot(exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(st.st_mode, source)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise cannot(exc) from None
    finally:
        os.close(fd)
    if size > limit:
        raise _too_big(source, None)
    return b"".join(chunks)


def parse_faults_file(path: str | Path) -> tuple[list[object], dict[str, int]]:
    """The `faults:` of a file: a topology file, or a file whose only key is `faults:` (a schedule kept apart
    from the lab it runs on). Returns (the list as plain data, field path -> line)."""
    source = str(path)
    try:
        text = read_file(path, source).decode("utf-8")
    except UnicodeDecodeError:
        text = ""
        parse_file(path)  # its error, with the line
    loader = _Loader(source)
    root = loader.compose(text) if text.strip() else None
    if isinstance(root, yaml.MappingNode):
        top = loader.mapping(root, "", TOP_KEYS, "top level")
        if set(top) == {"faults"}:
            return loader.faults(top["faults"][1])
    topo = parse_text(text, source)
    if not topo.faults:
        raise UsageError(f"{source}:1: no faults: list in this file",
                         "add a faults: list (docs/schedules.md), or give the file that has one")
    return topo.faults, topo.fault_lines


def load_text(text: str, source: str = "<string>") -> Topology:
    """Parse and validate a topology from YAML text; `source` names it in error messages."""
    return parse_text(text, source).validate()


def parse_text(text: str, source: str = "<string>") -> Topology:
    """Parse a topology from YAML text (its YAML and keys checked, not yet its rules: see parse_file)."""
    return _Loader(source).load(text)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "empty"
    return f"{node.value!r}"


def _rename(direction: str, base: str, replica: str) -> str:
    """An impairment's direction 'h1->db' on the copy of the link to replica db2: 'h1->db2'."""
    if direction == "both":
        return direction
    return "->".join(replica if part == base else part for part in direction.split("->", 1))


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


class _Composer(yaml.SafeLoader):
    """PyYAML's composer recurses once per nesting level: bound it (the error would be Python's recursion
    limit, with a traceback), and count aliases so that only files using them pay for the expansion check."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_size(root: yaml.Node, cap: int) -> int:
    """How many nodes the document has once aliases are expanded (saturating at cap + 1); iterative, since
    a chain of anchors can nest as deep as the file is long. A cycle counts once: the loader refuses it
    anyway, as no field of a topology holds itself."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            size[key] = min(cap + 1, 1 + sum(size.get(id(c), 1) for c in _children(node)))
        elif key not in size and key not in open_:
            open_.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in size and id(c) not in open_)
    return size[id(root)]


_GROUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


@dataclass
class _Group:
    name: str
    index: int  # file order
    knode: yaml.Node
    members: list[tuple[str, yaml.Node]]
    settings: dict[str, tuple[yaml.Node, yaml.Node]]


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source

    def compose(self, text: str) -> yaml.Node | None:
        loader = _Composer(text)
        try:
            root = loader.get_single_node()
        except _TooDeep as exc:
            raise UsageError(
                f"{self.source}:{exc.mark.line + 1}: nested more than {MAX_DEPTH} levels deep",
                "a topology is a few levels deep (links: - endpoints: [a, b]); check the brackets and indentation",
            ) from None
        finally:
            loader.dispose()
        if root is not None and loader.aliases and _expanded_size(root, MAX_EXPANDED) > MAX_EXPANDED:
            raise UsageError(
                f"{self.source}:1: its aliases (*name) expand to more than {MAX_EXPANDED} YAML nodes",
                "use fewer or smaller anchors, or write the links out",
            )
        return root

    def fail(self, node: yaml.Node | int, path: str, message: str, hint: str | None = None) -> NoReturn:
        line = node if isinstance(node, int) else node.start_mark.line + 1
        prefix = f"{self.source}:{line}: {path}: " if path else f"{self.source}:{line}: "
        raise UsageError(prefix + message, hint)

    def load(self, text: str) -> Topology:
        try:
            root = self.compose(text)
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            char = exc.character if isinstance(exc.character, str) else chr(exc.character)
            raise UsageError(
                f"{self.source}:{line}: character U+{ord(char):04X} is not allowed in YAML ({exc.reason})",
                "remove control characters; write them as escapes in a double-quoted string if you mean them",
            ) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            what = " ".join(p for p in (exc.context, exc.problem) if p)
            opened = exc.context_mark.line + 1 if exc.context_mark else line
            near = f"lines {opened}..{line}" if opened < line else f"line {line}"
            raise UsageError(
                f"{self.source}:{line}: YAML syntax error: {what}",
                f"check indentation, colons, brackets and quoting on {near}",
            ) from None
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"{self.source}:1: YAML error: {first}", "check the file is YAML") from None
        if root is None or (root.tag == _NULL and isinstance(root, yaml.ScalarNode)):
            raise UsageError(
                f"{self.source}:1: the file is empty",
                "write a topology: name:, nodes: and links: (see docs/topology.md)",
            )
        top = self.mapping(root, "", TOP_KEYS, "top level")
        for key in ("name", "nodes"):
            if key not in top:
                self.fail(
                    root,
                    "",
                    f"missing required key '{key}'",
                    "a topology needs name: and nodes: (links: is optional)",
                )
        topo = Topology(name=self.name(top["name"][1], "name"), source=self.source)
        topo.lines = {k: v[0].start_mark.line + 1 for k, v in top.items()}
        if "routing" in top:
            topo.routing = self.string(top["routing"][1], "routing")
        if "pools" in top:
            topo.pools = self.pools(top["pools"][1])
        defaults = self.mapping(top["defaults"][1], "defaults", DEFAULT_KEYS, "defaults") if "defaults" in top else {}
        groups = self.groups(top["groups"][1]) if "groups" in top else {}
        topo.nodes, topo.groups = self.nodes(top["nodes"][1], defaults, groups)
        svcspec.check_services(self, topo.nodes)
        if "links" in top:
            replicas = {base: members for base, members in topo.groups.items() if base not in groups}
            topo.links = self.links(top["links"][1], replicas)
        if "checks" in top:
            topo.checks = self.checks(top["checks"][1])
        if "faults" in top:
            topo.faults, topo.fault_lines = self.faults(top["faults"][1])
        if "profiles" in top:
            hint = "write profiles: {slow-dsl: {delay: 20ms, rate: 2mbit}}"
            for key, (knode, vnode) in self.mapping(top["profiles"][1], "profiles", (), "profiles", hint).items():
                sub = self.mapping(vnode, f"profiles.{key}", IMPAIR_KEYS, f"profile {key!r}", hint)
                topo.profiles[key] = {k: self.string(v, f"profiles.{key}.{k}") for k, (_, v) in sub.items()}
                topo.lines[f"profiles.{key}"] = knode.start_mark.line + 1
        if "between" in top:
            topo.between = self.between(top["between"][1])
            for rule in topo.between:  # a side may name groups (and replicated nodes): their members
                rule.a, rule.b = ([m for n in side for m in topo.groups.get(n, [n])] for side in (rule.a, rule.b))
        return topo

    def faults(self, node: yaml.Node) -> tuple[list[object], dict[str, int]]:
        """The `faults:` schedule as plain data (scalars as their literal text) with the line of every field;
        its grammar is checked by nslab.lab.schedule (also for the Python API's lists), its names by planning."""
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, "faults", f"faults must be a list, got {_kind(node)}",
                      "write one '- {at: 2s, partition: [[h1], [h2]], for: 3s}' line per fault")
        lines: dict[str, int] = {"faults": node.start_mark.line + 1}
        return [self.plain(item, f"faults[{i}]", lines) for i, item in enumerate(node.value)], lines

    def plain(self, node: yaml.Node, path: str, lines: dict[str, int]) -> object:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(v, f"{path}[{j}]", lines) for j, v in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            out: dict[str, object] = {}
            for key, (knode, vnode) in self.mapping(node, path, (), "a fault").items():
                lines[f"{path}.{key}"] = knode.start_mark.line + 1
                out[key] = self.plain(vnode, f"{path}.{key}", lines)
            return out
        if node.tag == _NULL:
            self.fail(node, path, "empty value", "give a value, or remove the key")
        return self.string(node, path)

    def between(self, node: yaml.Node) -> list[Between]:
        hint = "write '- {a: [eu-r1], b: [us-r1], delay: 40ms}' (a and b: a node or a list of nodes)"
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, "between", f"between must be a list, got {_kind(node)}", hint)
        out = []
        for i, item in enumerate(node.value):
            path = f"between[{i}]"
            fields = self.mapping(item, path, BETWEEN_KEYS, "a between rule", hint)
            sides: dict[str, list[str]] = {}
            for side in ("a", "b"):
                if side not in fields:
                    self.fail(item, path, f"missing required key {side!r}", hint)
                vnode = fields[side][1]
                items = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                sides[side] = [self.string(n, f"{path}.{side}") for n in items]
            rule = Between(sides["a"], sides["b"],
                           {k: self.string(v, f"{path}.{k}") for k, (_, v) in fields.items() if k not in ("a", "b")})
            rule.lines = {"": item.start_mark.line + 1, **{k: kn.start_mark.line + 1 for k, (kn, _) in fields.items()}}
            out.append(rule)
        return out

    def checks(self, node: yaml.Node) -> list[Check]:
        hint = "write e.g. '- reach: [h1, h2]', '- no_reach: [h1, db]', '- port_open: {from: h1, to: web, port: 80}'"
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, "checks", f"checks must be a list, got {_kind(node)}", hint)
        out = []
        for i, item in enumerate(node.value):
            path = f"checks[{i}]"
            fields = self.mapping(item, path, CHECK_KEYS, "a check", hint)
            kinds = [k for k in fields if k in CHECK_KINDS]
            if len(kinds) != 1:
                self.fail(item, path, "a check names exactly one of: " + ", ".join(CHECK_KINDS), hint)
            kind = kinds[0]
            knode, vnode = fields[kind]
            c = Check(kind, "", "")
            c.lines = {"": knode.start_mark.line + 1}
            if kind == "port_open":
                sub = self.mapping(vnode, f"{path}.{kind}", PORT_CHECK_KEYS, "port_open", hint)
                for key in ("to", "port"):
                    if key not in sub:
                        self.fail(vnode, f"{path}.{kind}", f"missing required key {key!r}", hint)
                c.dst = self.string(sub["to"][1], f"{path}.{kind}.to")
                c.src = self.string(sub["from"][1], f"{path}.{kind}.from") if "from" in sub else c.dst
                c.port = self.integer(sub["port"][1], f"{path}.{kind}.port", "port: 80")
                c.lines.update({k: kn.start_mark.line + 1 for k, (kn, _) in sub.items()})
            else:
                if not isinstance(vnode, yaml.SequenceNode) or len(vnode.value) != 2:
                    self.fail(vnode, f"{path}.{kind}", f"{kind} takes two nodes, got {_kind(vnode)}",
                              f"write {kind}: [FROM, TO]")
                c.src = self.string(vnode.value[0], f"{path}.{kind}[0]")
                c.dst = self.string(vnode.value[1], f"{path}.{kind}[1]")
            if "retries" in fields:
                c.retries = self.integer(fields["retries"][1], f"{path}.retries", "retries: 5")
                c.lines["retries"] = fields["retries"][0].start_mark.line + 1
            out.append(c)
        return out

    def integer(self, node: yaml.Node, path: str, example: str, name: str | None = None) -> int:
        """Only plain decimal digits are a number here. YAML 1.1 also reads 0x5dc, 0b1, 1_500, +5, 01500 (octal:
        832) and 22:22 (base 60: 1342) as integers, and !!int forces it: all of them refused, with the fix,
        rather than silently misread. Nor is a thousand-digit number converted (every such field is small)."""
        what = f"{name} must be an integer" if name else "expected a whole number"
        if not isinstance(node, yaml.ScalarNode) or not isinstance(node.value, str) or node.tag == _NULL:
            self.fail(node, path, f"{what}, got {_kind(node)}", f"e.g. {example}")
        text = node.value
        if node.style is not None:  # quoted: a string, whatever it holds
            self.fail(node, path, f"{what}, got the quoted string {text!r}", f"write it without quotes, e.g. {example}")
        m = _DECIMAL.fullmatch(text)
        if m is not None and not (len(m.group(1)) > 1 and m.group(1).startswith("0")) and node.tag == _INT:
            if len(m.group(1)) > 9:
                self.fail(node, path, f"number {text!r} ({len(m.group(1))} digits) is far too large",
                          f"e.g. {example}")
            return int(text)
        hint = f"write the number in decimal digits, without a leading zero, sign or '_', e.g. {example}"
        if m is not None and node.tag != _INT:  # digits, but tagged: !!str 1500, or 09 (not octal: a string)
            why = "has a leading zero" if node.tag == _STR and m.group(1).startswith("0") else \
                f"is tagged {node.tag.replace('tag:yaml.org,2002:', '!!')}"
            self.fail(node, path, f"{what}: {text!r} {why}", hint)
        form = next((why for pattern, why in _YAML11_INT_FORMS if pattern.fullmatch(text)), None)
        if node.tag == _INT and form is not None:
            try:
                value = f": {yaml.constructor.SafeConstructor().construct_yaml_int(node)}" if len(text) <= 40 else ""
            except ValueError:  # 0x_ resolves as an int but has no digits
                value = ", but it has no digits"
            self.fail(node, path, f"{text!r} is not a plain decimal number (YAML 1.1 reads it as {form}{value})",
                      hint)
        self.fail(node, path, f"{what}, got {_kind(node)}", f"e.g. {example}")

    def mapping(
        self, node: yaml.Node, path: str, allowed: Sequence[str], what: str, hint: str | None = None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key, refusing unknown and duplicate keys (safe_load would keep the last)."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(
                node,
                path,
                f"{what} must be a mapping (key: value lines), got {_kind(node)}",
                hint or f"write it as a mapping with keys: {', '.join(allowed)}",
            )
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            key = self.key(knode, path)
            kpath = f"{path}.{key}" if path else key
            if key in out:
                self.fail(
                    knode,
                    kpath,
                    f"duplicate key {key!r} (first on line {out[key][0].start_mark.line + 1})",
                    "YAML keeps only one of them; remove or rename one",
                )
            if allowed and key not in allowed:
                close = closest(key, allowed)
                self.fail(
                    knode,
                    kpath,
                    f"unknown key {key!r} in {what}",
                    (f"did you mean {close!r}? " if close else "") + f"allowed keys: {', '.join(allowed)}",
                )
            out[key] = (knode, vnode)
        return out

    def key(self, node: yaml.Node, path: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.fail(node, path, f"a key must be a plain name, got {_kind(node)}", "use a plain word as key")
        return str(node.value)

    def string(self, node: yaml.Node, path: str) -> str:
        # Scalars are taken literally: YAML 1.1 would read `on`/`no` as booleans and `012` as a number.
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.fail(node, path, f"expected a string, got {_kind(node)}", "give a single value (a word)")
        return str(node.value)

    def name(self, node: yaml.Node, path: str) -> str:
        return self.string(node, path)

    def pools(self, node: yaml.Node) -> Pools:
        entries = self.mapping(node, "pools", POOL_KEYS, "pools")
        pools = Pools()
        for key, (knode, vnode) in entries.items():
            setattr(pools, key, self.string(vnode, f"pools.{key}"))
            pools.lines[key] = knode.start_mark.line + 1
        return pools

    def nodes(self, node: yaml.Node, defaults: dict[str, tuple[yaml.Node, yaml.Node]],
              groups: dict[str, _Group]) -> tuple[dict[str, Node], dict[str, list[str]]]:
        """The nodes, each with what it inherits (defaults <- groups <- its own), replicas expanded; and the
        members of every group and replicated node."""
        entries = self.mapping(node, "nodes", (), "nodes", "one node per line: 'h1: {}' or 'r1: {kind: router}'")
        own: dict[str, dict[str, tuple[yaml.Node, yaml.Node]]] = {}
        for key, (_, vnode) in entries.items():
            if not (isinstance(vnode, yaml.ScalarNode) and vnode.tag == _NULL):  # `h1:` means `h1: {}`
                own[key] = self.mapping(vnode, f"nodes.{key}", NODE_KEYS, f"node {key!r}")
            else:
                own[key] = {}
        member_of = self.memberships(entries, own, groups)
        out: dict[str, Node] = {}
        replicas: dict[str, list[str]] = {}
        for key, (knode, _) in entries.items():
            path = f"nodes.{key}"
            fields = own[key]
            layers = [defaults, *(groups[g].settings for g in member_of.get(key, ()))]
            merged = self.merge([*layers, {k: v for k, v in fields.items() if k not in ("group", "count")}], path)
            names = [key]
            if "count" in fields:
                names = self.replica_names(key, fields["count"][1], entries)
                replicas[key] = names
            for name in names:
                n = self.node_settings(name, merged, path)
                n.lines[""] = knode.start_mark.line + 1
                if name in out:  # a replica that is also declared (checked in replica_names) cannot get here
                    self.fail(knode, path, f"duplicate node {name!r}", "give each node a unique name")
                out[name] = n
        members: dict[str, list[str]] = {}
        for g in groups:
            members[g] = [n for base in entries if g in member_of.get(base, ()) for n in replicas.get(base, [base])]
        members.update(replicas)
        return out, members

    # ---- issue 12: node settings, and what nodes inherit from defaults and groups ---------------------------
    def groups(self, node: yaml.Node) -> dict[str, _Group]:
        entries = self.mapping(node, "groups", (), "groups", "write groups: {etcd: {members: [db1, db2], env: {...}}}")
        out: dict[str, _Group] = {}
        for i, (name, (knode, vnode)) in enumerate(entries.items()):
            path = f"groups.{name}"
            if not _GROUP_NAME.fullmatch(name):
                self.fail(knode, path, f"invalid group name {name!r}",
                          "use 1..32 characters from a-z, 0-9 and '-', starting with a letter")
            fields = self.mapping(vnode, path, GROUP_KEYS, f"group {name!r}") if not (
                isinstance(vnode, yaml.ScalarNode) and vnode.tag == _NULL) else {}
            members: list[tuple[str, yaml.Node]] = []
            if "members" in fields:
                mnode = fields["members"][1]
                if not isinstance(mnode, yaml.SequenceNode):
                    self.fail(mnode, f"{path}.members", f"members must be a list, got {_kind(mnode)}",
                              "write members: [db1, db2] (nodes, replicated nodes or other groups)")
                members = [(self.string(m, f"{path}.members[{j}]"), m) for j, m in enumerate(mnode.value)]
            out[name] = _Group(name, i, knode, members, {k: v for k, v in fields.items() if k != "members"})
        return out

    def memberships(self, entries: dict[str, tuple[yaml.Node, yaml.Node]],
                    own: dict[str, dict[str, tuple[yaml.Node, yaml.Node]]],
                    groups: dict[str, _Group]) -> dict[str, list[str]]:
        """Node (as written, replicated or not) -> its groups in the order their settings apply: outer groups
        before the groups they contain, then file order. Refuses unknown names and cycles."""
        direct: dict[str, list[str]] = {}
        parents: dict[str, list[str]] = {g: [] for g in groups}
        for grp in groups.values():
            if grp.name in entries:
                self.fail(grp.knode, f"groups.{grp.name}", f"group {grp.name!r} has the name of a node",
                          "give groups and nodes different names")
            for j, (m, mnode) in enumerate(grp.members):
                if m in groups:
                    parents[m].append(grp.name)
                elif m in entries:
                    direct.setdefault(m, []).append(grp.name)
                else:
                    close = closest(m, [*entries, *groups])
                    self.fail(mnode, f"groups.{grp.name}.members[{j}]", f"unknown node or group {m!r}",
                              (f"did you mean {close!r}? " if close else "")
                              + f"members are nodes (a replicated node stands for all its replicas) or groups; "
                              f"known: {', '.join(list(entries)[:12])}")
        for key, fields in own.items():
            if "group" not in fields:
                continue
            gnode = fields["group"][1]
            items = list(gnode.value) if isinstance(gnode, yaml.SequenceNode) else [gnode]
            for j, item in enumerate(items):
                gpath = f"nodes.{key}.group" + (f"[{j}]" if isinstance(gnode, yaml.SequenceNode) else "")
                g = self.string(item, gpath)
                if g not in groups:
                    close = closest(g, list(groups))
                    self.fail(item, gpath, f"unknown group {g!r}",
                              (f"did you mean {close!r}? " if close else "")
                              + (f"groups: {', '.join(groups)}" if groups else "declare it under groups:"))
                direct.setdefault(key, []).append(g)
        depth: dict[str, int] = {}

        def depth_of(g: str, trail: tuple[str, ...]) -> int:
            if g in trail:
                cycle = " -> ".join([*trail[trail.index(g):], g])
                self.fail(groups[g].knode, f"groups.{g}.members", f"groups contain each other: {cycle}",
                          "a group may contain other groups, but not itself through them; remove one member")
            if g not in depth:
                depth[g] = 1 + max((depth_of(p, (*trail, g)) for p in parents[g]), default=-1)
            return depth[g]

        for g in groups:
            depth_of(g, ())
        out: dict[str, list[str]] = {}
        for key, gs in direct.items():
            closure: set[str] = set()
            todo = list(gs)
            while todo:
                g = todo.pop()
                if g not in closure:
                    closure.add(g)
                    todo.extend(parents[g])
            out[key] = sorted(closure, key=lambda g: (depth[g], groups[g].index))
        return out

    def merge(self, layers: list[dict[str, tuple[yaml.Node, yaml.Node]]],
              path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Later layers win: a mapping extends the inherited mapping (its keys replace; `KEY: ~` in it drops an
        inherited key), a list extends the inherited list (after it), anything else replaces it, and `key: ~`
        drops what was inherited."""
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for layer in layers:
            for key, (knode, vnode) in layer.items():
                if isinstance(vnode, yaml.ScalarNode) and vnode.tag == _NULL:
                    out.pop(key, None)
                    continue
                old = out.get(key)
                if isinstance(vnode, yaml.MappingNode):
                    pairs = dict(self.mapping(old[1], f"{path}.{key}", (), key)) if old is not None and \
                        isinstance(old[1], yaml.MappingNode) else {}
                    pairs.update(self.mapping(vnode, f"{path}.{key}", (), key))
                    kept = [p for p in pairs.values() if not (isinstance(p[1], yaml.ScalarNode) and p[1].tag == _NULL)]
                    vnode = yaml.MappingNode(vnode.tag, kept, vnode.start_mark, vnode.end_mark)
                elif old is not None and isinstance(old[1], yaml.SequenceNode) and isinstance(vnode, yaml.SequenceNode):
                    vnode = yaml.SequenceNode(vnode.tag, [*old[1].value, *vnode.value], vnode.start_mark,
                                              vnode.end_mark)
                out[key] = (knode, vnode)
        return out

    def replica_names(self, key: str, cnode: yaml.Node, entries: dict[str, tuple[yaml.Node, yaml.Node]]) -> list[str]:
        path = f"nodes.{key}.count"
        count = self.integer(cnode, path, "count: 3", "count")
        if not 1 <= count <= MAX_REPLICAS:
            self.fail(cnode, path, f"count must be 1..{MAX_REPLICAS}, got {count}",
                      f"give the number of replicas ({key}1..{key}N), e.g. count: 3")
        names = [f"{key}{i}" for i in range(1, count + 1)]
        if len(names[-1]) > NODE_NAME_MAX:
            self.fail(cnode, path, f"replica name {names[-1]!r} would be longer than {NODE_NAME_MAX} characters",
                      "shorten the node's name or the count")
        clash = next((n for n in names if n in entries), None)
        if clash is not None:
            self.fail(cnode, path, f"replica {clash!r} is also declared as a node (line "
                                   f"{entries[clash][0].start_mark.line + 1})", "rename one of them")
        return names

    def node_settings(self, name: str, fields: dict[str, tuple[yaml.Node, yaml.Node]], path: str) -> Node:
        n = Node(name)
        for key, (_, vnode) in fields.items():
            n.lines[key] = vnode.start_mark.line + 1
            if key == "kind":
                n.kind = self.string(vnode, f"{path}.kind")
            elif key in ("env", "sysctls"):
                what = "env" if key == "env" else "sysctls"
                example = "env: {ETCD_NAME: ${node}}" if key == "env" else "sysctls: {net.ipv4.conf.all.rp_filter: 0}"
                values: dict[str, str] = {}
                for k, (kk, vv) in self.mapping(vnode, f"{path}.{key}", (), what, f"write {example}").items():
                    values[k] = self.scalar(vv, f"{path}.{key}.{k}", example)
                    n.lines[f"{key}.{k}"] = kk.start_mark.line + 1
                setattr(n, key, values)
            elif key == "routes":
                n.routes = self.static_routes(vnode, f"{path}.routes")
            elif key == "loopback":
                items = list(vnode.value) if isinstance(vnode, yaml.SequenceNode) else [vnode]
                for j, item in enumerate(items):
                    n.loopback.append(self.string(item, f"{path}.loopback[{j}]"))
                    n.lines[f"loopback[{j}]"] = item.start_mark.line + 1
            elif key == "exec":
                n.exec = self.commands(vnode, f"{path}.exec", n.lines)
        svcspec.parse_node_keys(self, fields, path, n)  # files, private, services (nslab.lab.svcspec)
        return n

    def scalar(self, node: yaml.Node, path: str, example: str) -> str:
        """A value as written (`1`, `yes`, `0.5` stay the text they are)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.fail(node, path, f"expected a single value, got {_kind(node)}", f"e.g. {example}")
        return str(node.value)

    def static_routes(self, node: yaml.Node, path: str) -> list[StaticRoute]:
        hint = "write routes: [{to: default, via: 10.0.1.254}, {to: 10.9.0.0/16, via: r1}]"
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, f"routes must be a list, got {_kind(node)}", hint)
        out = []
        for j, item in enumerate(node.value):
            fields = self.mapping(item, f"{path}[{j}]", ROUTE_KEYS, "a route", hint)
            for key in ROUTE_KEYS:
                if key not in fields:
                    self.fail(item, f"{path}[{j}]", f"missing required key {key!r}", hint)
            out.append(StaticRoute(self.string(fields["to"][1], f"{path}[{j}].to"),
                                   self.string(fields["via"][1], f"{path}[{j}].via"),
                                   lines={"": item.start_mark.line + 1,
                                          **{k: v[1].start_mark.line + 1 for k, v in fields.items()}}))
        return out

    def commands(self, node: yaml.Node, path: str, lines: dict[str, int]) -> list[Command]:
        hint = "write exec: ['ip link set lo mtu 1500', [sysctl, -w, net.ipv4.tcp_syncookies=1]]"
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, f"exec must be a list of commands, got {_kind(node)}", hint)
        out: list[Command] = []
        for j, item in enumerate(node.value):
            lines[f"exec[{j}]"] = item.start_mark.line + 1
            if isinstance(item, yaml.SequenceNode):
                out.append([self.scalar(a, f"{path}[{j}][{k}]", "[ping, -c1, h2]") for k, a in enumerate(item.value)])
            else:
                out.append(self.string(item, f"{path}[{j}]"))
        return out

    def links(self, node: yaml.Node, replicas: dict[str, list[str]] | None = None) -> list[Link]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(
                node,
                "links",
                f"links must be a list, got {_kind(node)}",
                "write one '- [a, b]' line per link",
            )
        out: list[Link] = []
        for i, item in enumerate(node.value):
            link = self.link(item, f"links[{i}]")
            if replicas:
                link.origin = i  # its place in the file, which names its implicit switch (lanN)
                out.extend(self.replicate(link, f"links[{i}]", replicas))
            else:
                out.append(link)
        return out

    def replicate(self, link: Link, path: str, replicas: dict[str, list[str]]) -> list[Link]:
        """A link naming a replicated node: a point-to-point link is repeated once per replica (to a switch,
        that puts them all on its LAN), a LAN of 3+ endpoints takes every replica as a member."""
        at = [j for j, e in enumerate(link.endpoints) if e.node in replicas]
        if not at:
            return [link]
        for j in at:
            ep = link.endpoints[j]
            if ep.ipv4 is not None or ep.ipv6 is not None:
                self.fail(ep.lines.get("", 1), f"{path}.endpoints[{j}]",
                          f"{ep.node!r} stands for {len(replicas[ep.node])} replicas, which cannot share one address",
                          f"drop the address (each replica gets its own), or link {replicas[ep.node][0]}, ... "
                          "one by one")
        if len(link.endpoints) > 2:
            eps: list[Endpoint] = []
            for e in link.endpoints:
                eps.extend([Endpoint(r, e.ifname, lines=e.lines) for r in replicas[e.node]] if e.node in replicas
                           else [e])
            return [Link(eps, link.mtu, link.prefix, link.prefix6, link.impair, link.lines, origin=link.origin)]
        if len(at) == 2:
            a, b = link.endpoints[0].node, link.endpoints[1].node
            self.fail(link.lines.get("", 1), path, f"both ends ({a!r}, {b!r}) are replicated nodes",
                      f"link each replica on its own, or put both on a switch: [s1, {a}] and [s1, {b}]")
        j = at[0]
        base = link.endpoints[j].node
        out = []
        for r in replicas[base]:
            eps = [Endpoint(r if k == j else e.node, e.ifname, e.ipv4, e.ipv6, lines=e.lines)
                   for k, e in enumerate(link.endpoints)]
            impair = {_rename(d, base, r): v for d, v in link.impair.items()}
            out.append(Link(eps, link.mtu, link.prefix, link.prefix6, impair, link.lines, origin=link.origin))
        return out

    def link(self, node: yaml.Node, path: str) -> Link:
        lines = {"": node.start_mark.line + 1}
        if isinstance(node, yaml.SequenceNode):
            eps_node: yaml.Node = node
            fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        elif isinstance(node, yaml.MappingNode):
            fields = self.mapping(node, path, LINK_KEYS, "a link")
            if "endpoints" not in fields:
                self.fail(
                    node,
                    path,
                    "missing required key 'endpoints'",
                    "list the nodes the link joins: endpoints: [a, b]",
                )
            eps_node = fields["endpoints"][1]
            for key, (knode, _) in fields.items():
                lines[key] = knode.start_mark.line + 1
        else:
            self.fail(
                node,
                path,
                f"a link must be a list of endpoints or a mapping, got {_kind(node)}",
                "write [a, b] or {endpoints: [a, b], mtu: 9000}",
            )
        if not isinstance(eps_node, yaml.SequenceNode):
            self.fail(
                eps_node,
                f"{path}.endpoints",
                f"endpoints must be a list, got {_kind(eps_node)}",
                "write endpoints: [a, b]",
            )
        eps = [self.endpoint(e, f"{path}.endpoints[{j}]") for j, e in enumerate(eps_node.value)]
        link = Link(eps, lines=lines)
        if "mtu" in fields:
            link.mtu = self.integer(fields["mtu"][1], f"{path}.mtu", "mtu: 9000", "mtu")
        for key in ("prefix", "prefix6"):
            if key in fields:
                setattr(link, key, self.string(fields[key][1], f"{path}.{key}"))
        if "impair" in fields:
            link.impair = self.impairments(fields["impair"][1], f"{path}.impair")
        return link

    def impairments(self, node: yaml.Node, path: str) -> dict[str, dict[str, str]]:
        """{loss: 1%} for both directions, or {"h1->r1": {loss: 5%}, "r1->h1": {rate: 1mbit}}."""
        hint = "write impair: {loss: 1%, rate: 10mbit} or impair: {\"h1->r1\": {loss: 5%}}"
        entries = self.mapping(node, path, (), "impair", hint)
        if all(k in IMPAIR_KEYS for k in entries):
            return {"both": {k: self.string(v, f"{path}.{k}") for k, (_, v) in entries.items()}}
        out: dict[str, dict[str, str]] = {}
        for key, (knode, vnode) in entries.items():
            if "->" not in key and key != "both":
                close = closest(key, IMPAIR_KEYS)
                self.fail(knode, f"{path}.{key}", f"unknown impairment {key!r}",
                          (f"did you mean {close!r}? " if close else "")
                          + f"impairments: {', '.join(IMPAIR_KEYS)}, or a direction like 'h1->r1'")
            sub = self.mapping(vnode, f"{path}.{key}", IMPAIR_KEYS, f"impairments of {key}", hint)
            out[key] = {k: self.string(v, f"{path}.{key}.{k}") for k, (_, v) in sub.items()}
        return out

    def endpoint(self, node: yaml.Node, path: str) -> Endpoint:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            fields = self.mapping(node, path, ENDPOINT_KEYS, "an endpoint")
            if "node" not in fields:
                self.fail(node, path, "missing required key 'node'", "write {node: h1, ifname: eth1}")
            ep = Endpoint(self.string(fields["node"][1], f"{path}.node"))
            for key in ("ifname", "ipv4", "ipv6"):
                if key in fields:
                    setattr(ep, key, self.string(fields[key][1], f"{path}.{key}"))
            ep.lines = {key: knode.start_mark.line + 1 for key, (knode, _) in fields.items()}
        else:
            ep = Endpoint.parse(self.string(node, path))
        ep.lines[""] = line
        return ep
