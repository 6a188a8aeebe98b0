"""The seed post's walkthrough, narrated with real output, and then a small routed lab.

Each step prints the nslab command that does the same thing, then does it through the Python API.
Everything created is removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from . import probe, threads
from .errors import ExistsError, UsageError
from .ifconfig import format_all
from .kernel import netns as _netns
from .namespace import Namespace
from .shield import run_cleanup, shielded

DEMO_NS = "nslab-demo"
DEMO_LAB = "nslabdemo"
PORT = 8900
TRIES = 20  # other names tried when the default is taken (parallel CI jobs each run the demo)


def candidates(base: str, limit: int = 64) -> Iterator[str]:
    """The default name, then random ones next to it: a job that finds the default taken takes another, and two
    jobs racing for the same one find out when creating it (namespaces are created exclusively)."""
    yield base
    for _ in range(TRIES):
        suffix = secrets.token_hex(2)
        yield f"{base}-{suffix}" if len(base) + 5 <= limit else base[:limit - 3] + suffix[:3]


class Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.step = 0

    def say(self, text: str = "") -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def title(self, text: str) -> None:
        self.step += 1
        self.say(f"\n== {self.step}. {text}")

    def cmd(self, text: str) -> None:
        self.say(f"$ {text}")

    def block(self, text: str) -> None:
        self.say(text.rstrip("\n") if text.strip() else "(no output)")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C does (only in the main thread, where Python delivers signals), unless
    the program has a SIGTERM handler of its own (the CLI's does the same, with its own exit status)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL, None
    ):
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def walkthrough(out: TextIO = sys.stdout, name: str | None = None) -> None:
    """The seed walkthrough in namespace NAME; without a name in nslab-demo, or another free name when that
    one is taken (said in the narration)."""
    n = Narrator(out)
    given = name
    names: Iterable[str] = candidates(DEMO_NS) if name is None else [name]
    stop = threading.Event()
    listener: threading.Thread | None = None
    ns: Namespace | None = None
    chosen = name or DEMO_NS

    def clean_up() -> None:
        stop.set()
        if listener is not None:
            listener.join(3)
        if ns is None:
            return  # interrupted before the namespace existed: nothing to remove
        n.title("Clean up")
        n.cmd(f"nslab ns del {chosen}")
        if _netns.exists(chosen):
            ns.delete()
        n.say("Done: the namespace and everything in it are gone.")

    with _sigterm_as_interrupt():
        try:
            for chosen in names:
                if _netns.exists(chosen) or _netns.stale(chosen):
                    continue
                try:
                    with shielded():  # a signal held during the create is raised once `ns` is set: cleaned up
                        ns = Namespace.create(chosen)
                    break
                except ExistsError:
                    continue  # another job took it between our look and our create
            if ns is None:
                taken = given or DEMO_NS
                raise UsageError(f"namespace {taken!r} already exists"
                                 + ("" if given else f" (and {TRIES} other names tried)"),
                                 f"delete it with 'nslab ns del {taken}' first, or pick another with --name")
            name = chosen
            n.title("A network namespace is a separate room with its own networking")
            if given is None and chosen != DEMO_NS:
                n.say(f"({DEMO_NS} is taken, by another run or program: this demo uses {chosen})")
            n.cmd(f"nslab ns add {name}")
            n.cmd(f"nslab -n {name} ifconfig")
            n.block(format_all(ns.links()))
            n.say("Nothing: ifconfig lists interfaces that are up, and in a fresh namespace none is.")
            n.cmd(f"nslab -n {name} ifconfig -a")
            n.block(format_all(ns.links(), show_all=True))
            n.say("lo exists but is down: no UP, no RUNNING, no address.")

            n.title(f"Start a server inside the namespace (the post's nc -lnvp {PORT})")
            n.cmd(f"nslab -n {name} probe listen {PORT} --http &")
            ready = threading.Event()
            listener = _start_listener(name, ready, stop, lambda line: n.say(f"  [listener] {line}"))
            ready.wait(5)

            n.title(f"Connect to localhost:{PORT} from inside the namespace")
            n.cmd(f"nslab -n {name} probe connect 127.0.0.1 {PORT}")
            res = probe.connect("127.0.0.1", PORT, timeout=2.0, netns=name)
            n.say(f"unreachable: {res.reason}" if not res.ok else "reachable")
            n.say("The server is listening, yet even localhost is unreachable: with lo down the namespace has\n"
                  "no interface to carry the packet, not even to itself, so there is no route to 127.0.0.1.")

            n.title("Bring lo up (the post's ip link set dev lo up)")
            n.cmd(f"nslab -n {name} link set lo up")
            ns.link("lo").up()

            n.title(f"Try again, as the post does with curl localhost:{PORT}")
            n.cmd(f"nslab -n {name} probe http http://localhost:{PORT}/index.html")
            got = probe.http(f"http://localhost:{PORT}/index.html", timeout=5.0, netns=name)
            n.say(f"HTTP {got.status} {got.reason}: {got.body.decode(errors='replace').strip()}")
            n.say("The listener printed the connection and the request it received.")

            n.title("ifconfig again: lo is UP and RUNNING, and its counters moved")
            n.cmd(f"nslab -n {name} ifconfig")
            n.block(format_all(ns.links()))
        finally:
            run_cleanup(clean_up)  # a second Ctrl-C must not leave the namespace behind


def _start_listener(name: str, ready: threading.Event, stop: threading.Event,
                    out: Callable[[str], None]) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(Exception):
            probe.listen(PORT, out=out, ready=ready, stop=stop, answer_http=True, netns=name)

    return threads.start(run, "nslab-demo-listener")


def lab_walkthrough(out: TextIO = sys.stdout, name: str | None = None) -> None:
    """A small routed lab: three routers in a ring, a host on each; every host reaches every other. Without a
    name the lab is nslabdemo, or another free name when that one is taken."""
    from .lab import state as st
    from .lab.lab import Lab
    from .names import LAB_NAME_MAX

    n = Narrator(out)
    name_given = name
    names = candidates(DEMO_LAB, LAB_NAME_MAX) if name is None else iter([name])

    def free_lab() -> Lab:
        for chosen in names:
            if st.load(chosen) is not None or any(_netns.exists(f"{chosen}-{x}") for x in ("r1", "h1")):
                continue
            return Lab.topo("ring", 3, name=chosen)
        taken = name_given or DEMO_LAB
        raise UsageError(f"lab {taken!r} is already up" + ("" if name_given else f" (and {TRIES} other names tried)"),
                         f"take it down with 'nslab lab down {taken}' first, or pick another with --name")

    lab = free_lab()
    name = lab.name
    ours = True  # taken down at the end, also when interrupted while coming up
    with _sigterm_as_interrupt():
        n.title("A small lab: three routers in a ring, one host on each")
        if name_given is None and name != DEMO_LAB:
            n.say(f"({DEMO_LAB} is taken, by another run or program: this demo uses {name})")
        n.cmd(f"nslab lab up --topo ring,3 --name {name}")
        try:
            while True:
                up = lab.up()
                if up.changed and not (up.repaired or up.added_nodes or up.added_links):
                    break
                # Another job brought a lab of this name up between our look and our up: theirs, not ours.
                ours = False
                if name_given is not None:
                    raise UsageError(f"lab {name!r} was brought up by someone else just now; it was left alone",
                                     "pick another name with --name")
                taken, lab = name, free_lab()
                name, ours = lab.name, True
                n.say(f"({taken} was brought up by another job just now: this demo uses {name})")
                n.cmd(f"nslab lab up --topo ring,3 --name {name}")
            n.say(up.summary())
            for node in lab.nodes:
                if node.kind == "host":
                    n.say(f"  {node.name:<4} {node.kind:<7} {', '.join(node.addresses)}")
            n.title("Every host reaches every other host, across the ring of routers")
            hosts = [x.name for x in lab.nodes if x.kind == "host"]
            for a in hosts:
                for b in hosts:
                    if a == b:
                        continue
                    n.cmd(f"nslab lab exec {name} {a} -- ping -c1 -W2 {b}")
                    res = lab[a].run(["ping", "-c1", "-W2", b], capture_output=True, text=True)
                    line = next((ln for ln in res.stdout.splitlines() if "ttl=" in ln), None)
                    n.say(line or f"FAILED: {res.stdout.strip() or res.stderr.strip()}")
            n.say("ttl=62: pings start at 64 and each router on the way takes one off; here two routers.")
        finally:

            def take_down() -> None:
                if not ours:
                    return
                n.title("Take the lab down")
                n.cmd(f"nslab lab down {name}")
                n.say(f"{lab.down()} namespaces deleted")

            run_cleanup(take_down)
