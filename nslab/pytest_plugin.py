"""The nslab pytest plugin: labs as fixtures, always torn down, with the lab's state in failure reports.

Registered through the `pytest11` entry point (`nslab = "nslab.pytest_plugin"`), so installing nslab enables
it; without the entry point, `-p nslab.pytest_plugin` or `pytest_plugins = ["nslab.pytest_plugin"]`.

    def test_web(nslab_lab):
        lab = nslab_lab(topo="single,3")
        web = start(lab, "h2", "web", ["python3", "-m", "http.server", "8000"], ready_port=8000)
        assert_port_open(lab, "h2", 8000, from_node="h1")

    @pytest.mark.nslab_topo("linear,3")
    def test_path(lab):
        assert_reachable(lab, "h1", "h3")

Fixtures: `nslab_lab` (a factory, per test), `nslab_lab_module` (the same, per module), `lab` (one lab
from an `nslab_topo` or `nslab_file` marker). Every lab gets a fresh name, `t` + 6 random hex digits, so
tests (and pytest-xdist workers, and concurrent runs) never collide. Teardown stops the services this
process started, deletes the lab (`down`: every process in its namespaces is killed) and its logs: after a
pass, a failure, Ctrl-C (pytest tears fixtures down on KeyboardInterrupt), SIGTERM (turned into
KeyboardInterrupt), or at interpreter exit for anything left. A failed test's report gets one section with
the lab's status read from the kernel and one per service log. See docs/testing.md.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import importlib
import importlib.util
import os
import secrets
import signal
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from . import services as svc_mod
from .errors import NslabError, PermissionDenied, UsageError, lab_privilege_problem
from .lab import state as st
from .lab.lab import Lab
from .lab.spec import Topology
from .testing import status_text

_NSLAB_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PCAP_PENDING = "pcap capture will be attached once the capture module lands (nslab/capture.py)"

# Every lab this process brought up and has not taken down yet, by name, with the pytest config (session)
# whose fixture made it: the last-resort cleanup's list.
_LIVE: dict[str, tuple[Lab, pytest.Config | None]] = {}
_PID = os.getpid()
_pcap_paths_key = pytest.StashKey[list[str]]()
_old_sigterm_key = pytest.StashKey[Any]()


# ------------------------------------------------------------------------------------------------ names
# Three hex digits fixed per process (so a session can tell its own labs from a concurrent run's), three
# random per lab.
SESSION_TAG = secrets.token_hex(2)[:3]


def unique_name() -> str:
    """A lab name no lab on this machine has: `t` + this process's 3-digit tag + 3 random hex digits
    (os.urandom: distinct per process, hence per xdist worker), checked against the recorded labs and
    /run/netns."""
    for _ in range(100):
        name = "t" + SESSION_TAG + secrets.token_hex(2)[:3]
        if name in _LIVE or st.load(name) is not None or svc_mod.log_dir(name).exists():
            continue
        try:
            taken = any(e.startswith(name + "-") for e in os.listdir("/run/netns"))
        except FileNotFoundError:
            taken = False
        if not taken:
            return name
    raise NslabError("cannot find a free lab name", "are thousands of labs up? see 'nslab lab list'")


# ----------------------------------------------------------------------------------------- teardown
def teardown_lab(lab: Lab) -> None:
    """Stop the services this process started in LAB, take it down, delete its logs. Idempotent."""
    errors: list[str] = []
    try:
        svc_mod.forget(lab.name, timeout=1.0)
    except Exception as exc:
        errors.append(f"stopping services: {exc}")
    try:
        lab.down()
    except Exception as exc:
        errors.append(f"down: {exc}")
    try:
        svc_mod.remove_logs(lab.name)
    except Exception as exc:
        errors.append(f"removing logs: {exc}")
    if not errors:
        _LIVE.pop(lab.name, None)
    else:
        raise NslabError(f"teardown of lab {lab.name!r} failed: " + "; ".join(errors),
                         f"remove what is left with 'nslab lab down {lab.name}' or 'nslab lab cleanup'")


def _cleanup_all(config: pytest.Config | None = None) -> None:
    """Last resort: take down every lab still up (of one session if config is given; never in a forked
    child, which shares the list but not the labs)."""
    if os.getpid() != _PID:
        return
    for lab, owner in list(_LIVE.values()):
        if config is None or owner is config:
            with contextlib.suppress(Exception):
                teardown_lab(lab)


atexit.register(_cleanup_all)


def fail(exc: NslabError) -> None:
    """Fail the current test with the message the CLI would print, and no traceback."""
    __tracebackhide__ = True
    pytest.fail(f"nslab: {exc}", pytrace=False)


def skip_unless_privileged() -> None:
    """Skip the current test, with the reason, when this process cannot make labs (not root, capabilities
    dropped, /run not writable): the plugin loads in every pytest run of the environment, privileged or not."""
    __tracebackhide__ = True
    reason = lab_privilege_problem()
    if reason is not None:
        pytest.skip(reason)


# ----------------------------------------------------------------------------------------- factory
class LabFactory:
    """`factory(file=... | topo=... | topology=...)` -> a running Lab with a fresh unique name.

    file: a topology file; a relative path is looked up next to the test file first, then in the current
    directory. topo: a built-in as on the command line ("single,3"), or a tuple ("single", 3).
    topology: a Topology (or a Lab), copied, not changed. The file's or topology's own name is replaced.
    """

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.labs: list[Lab] = []
        self.base = Path(request.path).parent
        self.config = request.config
        self.tmp_path_factory = tmp_path_factory

    def __call__(
        self,
        file: str | os.PathLike[str] | None = None,
        *,
        topo: str | tuple[Any, ...] | None = None,
        topology: Topology | Lab | None = None,
    ) -> Lab:
        __tracebackhide__ = True
        skip_unless_privileged()
        given = [x for x in (file, topo, topology) if x is not None]
        if len(given) != 1:
            fail(UsageError("nslab_lab: give exactly one of file=, topo= or topology=",
                            "e.g. nslab_lab(topo='single,3') or nslab_lab(file='campus.yaml')"))
        # pytest.fail is called outside the except blocks: inside, the report would show the chain.
        error: NslabError | None = None
        name = unique_name()
        try:
            lab = self._make(name, file, topo, topology)
        except NslabError as exc:
            error = exc
        except (OSError, ValueError, TypeError) as exc:
            error = UsageError(f"nslab_lab: {exc}", "see docs/testing.md for the fixture's arguments")
        if error is not None:
            fail(error)
        _LIVE[name] = (lab, self.config)
        self.labs.append(lab)
        try:
            lab.up()
        except (PermissionDenied, PermissionError) as exc:
            # Refused for want of a privilege the check above could not see: not this test's failure.
            # (Its rollback removed what it made; a teardown without the privilege could only fail.)
            with contextlib.suppress(Exception):
                teardown_lab(lab)
            self.labs.remove(lab)
            _LIVE.pop(name, None)
            pytest.skip(f"nslab: cannot bring a lab up here: {exc}")
        except NslabError as exc:
            error = exc
        except BaseException:
            with contextlib.suppress(Exception):
                teardown_lab(lab)
            raise
        if error is not None:
            with contextlib.suppress(Exception):
                teardown_lab(lab)
            fail(error)
        _pcap_started(lab)
        return lab

    def _make(self, name: str, file: str | os.PathLike[str] | None, topo: str | tuple[Any, ...] | None,
              topology: Topology | Lab | None) -> Lab:
        if file is not None:
            return Lab.from_file(self.resolve_path(file), name=name)
        if isinstance(topo, str):
            return Lab.from_topo_arg(topo, name=name)
        if isinstance(topo, tuple):
            if not topo or not isinstance(topo[0], str):
                raise UsageError(f"nslab_lab: topo={topo!r} is not a topology",
                                 "give 'single,3' or ('single', 3)")
            return Lab.topo(topo[0], *topo[1:], name=name)
        if isinstance(topology, Lab):
            topology = topology.topology
        if not isinstance(topology, Topology):
            raise UsageError(f"nslab_lab: topology={topology!r} is not a Topology",
                             "build one with nslab.lab.topology.Topology.new(...), or pass file= or topo=")
        t = copy.deepcopy(topology)
        t.name = name
        return Lab(t)

    def resolve_path(self, file: str | os.PathLike[str]) -> str:
        path = Path(file)
        if not path.is_absolute() and (self.base / path).exists():
            return str(self.base / path)
        return str(path)

    def close(self) -> None:
        errors = []
        for lab in reversed(self.labs):
            try:
                teardown_lab(lab)
            except NslabError as exc:
                errors.append(exc)
        self.labs.clear()
        if errors:
            fail(errors[0])


@pytest.fixture
def nslab_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LabFactory:
    """A factory of labs for one test: `lab = nslab_lab(topo="single,3")`; all taken down after the test."""
    factory = LabFactory(request, tmp_path_factory)
    request.addfinalizer(factory.close)
    return factory


@pytest.fixture(scope="module")
def nslab_lab_module(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LabFactory:
    """The same factory for a whole module: its labs are taken down after the module's last test."""
    factory = LabFactory(request, tmp_path_factory)
    request.addfinalizer(factory.close)
    return factory


@pytest.fixture
def lab(request: pytest.FixtureRequest, nslab_lab: LabFactory) -> Lab:
    """One lab built from the test's `nslab_topo(...)` or `nslab_file(PATH)` marker (closest one wins)."""
    __tracebackhide__ = True
    topo = request.node.get_closest_marker("nslab_topo")
    file = request.node.get_closest_marker("nslab_file")
    if (topo is None) == (file is None):
        fail(UsageError(
            "the lab fixture needs one marker: @pytest.mark.nslab_topo('single,3') or "
            "@pytest.mark.nslab_file('lab.yaml')" + (", not both" if topo is not None else ""),
            "or use the nslab_lab factory fixture",
        ))
    if file is not None:
        if len(file.args) != 1:
            fail(UsageError("nslab_file takes one path", "write @pytest.mark.nslab_file('lab.yaml')"))
        return nslab_lab(file=file.args[0])
    assert topo is not None
    if len(topo.args) == 1 and isinstance(topo.args[0], str):
        return nslab_lab(topo=topo.args[0])
    return nslab_lab(topo=tuple(topo.args))


# ----------------------------------------------------------------------------------------- hooks
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nslab", "nslab network labs")
    group.addoption("--nslab-pcap", action="store_true", default=False,
                    help="capture packets on every host's first interface during each test; "
                         "a failed test's report lists the pcap files")
    group.addoption("--nslab-fault-seed", type=int, default=None, metavar="N",
                    help="the seed of the fault schedules the nslab_faults fixture runs (to replay a failed run: "
                         "its report gives the seed)")
    group.addoption("--nslab-log-lines", type=int, default=50, metavar="N",
                    help="lines of each service log in a failed test's report (default 50)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nslab_topo(SPEC): the `lab` fixture builds this built-in topology, "
                                       "e.g. nslab_topo('single,3') or nslab_topo('tree', 2, 2)")
    config.addinivalue_line("markers", "nslab_file(PATH): the `lab` fixture builds the lab of this topology file")
    # SIGTERM (CI cancelling a job, `timeout`) would kill us without teardown: make it a KeyboardInterrupt,
    # which pytest answers by tearing every fixture down.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL, None
    ):
        config.stash[_old_sigterm_key] = signal.signal(signal.SIGTERM, _on_sigterm)


def pytest_unconfigure(config: pytest.Config) -> None:
    old = config.stash.get(_old_sigterm_key, None)
    if old is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, old)
    _cleanup_all(config)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def labs_of(item: pytest.Item) -> list[Lab]:
    """The running labs a test uses: from its nslab fixtures, also when requested through other fixtures."""
    out: dict[str, Lab] = {}
    for value in getattr(item, "funcargs", {}).values():
        found = value.labs if isinstance(value, LabFactory) else [value] if isinstance(value, Lab) else []
        for lab in found:
            if lab.name in _LIVE:
                out[lab.name] = lab
    return list(out.values())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep: pytest.TestReport = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, NslabError) and not _full_tracebacks(item):
        rep.longrepr = _clean_error(call.excinfo)
    if rep.when == "call" and rep.failed:
        lines = item.config.getoption("nslab_log_lines")
        labs = labs_of(item)
        for lab in labs:
            rep.sections.extend(report_sections(lab, lines))
        if item.config.getoption("nslab_pcap") and labs:
            if not capture_available():
                rep.sections.append(("nslab pcap", _PCAP_PENDING))
            else:
                paths = item.stash.get(_pcap_paths_key, [])
                rep.sections.append(("nslab pcap", "\n".join(paths) or "no lab host was captured"))
    return rep


def report_sections(lab: Lab, lines: int = 50) -> list[tuple[str, str]]:
    """(title, text) pairs for a failure report: the lab's status, then the tail of every service log."""
    try:
        status = status_text(lab)
    except Exception as exc:
        status = f"(cannot read the lab's status: {exc})"
    out = [(f"nslab lab {lab.name}: status", status)]
    timeline = timeline_text(lab)
    if timeline:
        out.append((f"nslab lab {lab.name}: fault timeline", timeline))
    for path in svc_mod.log_files(lab.name):
        rel = f"{path.parent.name}/{path.name}"
        out.append((f"nslab lab {lab.name}: log {rel} (last {lines} lines; {path})",
                    svc_mod.tail(path, lines) or "(empty)"))
    return out


REPORT_EVENTS = 200  # the timeline's last events a failure report shows


def timeline_text(lab: Lab) -> str:
    """The lab's fault timeline (nslab.lab.events), the runs cut off, and how to replay each schedule run."""
    from .lab import events as ev

    try:
        found = ev.read(lab.name)
    except OSError as exc:
        return f"(cannot read the lab's timeline: {exc})"
    if not found:
        return ""
    shown = found[-REPORT_EVENTS:]
    lines = ([f"({len(found) - len(shown)} earlier events not shown)"] if len(shown) < len(found) else [])
    lines += [ev.format_table(shown), *ev.notes(found, lab.name)]
    for r in ev.runs(found):
        lines.append(f"schedule run {r['run']}: {r['state']}, seed {r['seed']}; replay the same faults with "
                     f"--nslab-fault-seed {r['seed']} (pytest) or --seed {r['seed']} (nslab lab run-faults)")
    return "\n".join(lines)


class FaultRuns:
    """`run = nslab_faults(lab, faults=[...], seed=None)`: a fault schedule running in the background while the
    test goes on (nslab.lab.schedule.Run, started); `run.wait()` waits for its end. At teardown every run still
    going is stopped and its faults undone (before the lab goes down); the failure report has the timeline and
    the seed. The seed: the one given, else --nslab-fault-seed, else a new one (printed in the report)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.runs: list[Any] = []

    def __call__(self, lab: Lab, faults: Any = None, *, seed: int | None = None,
                 file: str | os.PathLike[str] | None = None) -> Any:
        __tracebackhide__ = True
        if seed is None:
            seed = self.config.getoption("nslab_fault_seed")
        error: NslabError | None = None
        try:
            run = lab.schedule(faults, seed, file=None if file is None else os.fspath(file))
            run.__enter__()
        except NslabError as exc:
            error = exc
        if error is not None:
            fail(error)
        self.runs.append(run)
        return run

    def close(self) -> None:
        errors = []
        for run in reversed(self.runs):
            try:
                run.__exit__(None, None, None)
            except NslabError as exc:
                errors.append(exc)
        self.runs.clear()
        if errors:
            fail(errors[0])


@pytest.fixture
def nslab_faults(request: pytest.FixtureRequest, nslab_lab: LabFactory) -> FaultRuns:
    """Run fault schedules during a test: `run = nslab_faults(lab, [{"at": "1s", "node-stop": "h2", "for": "2s"}])`.
    Depends on nslab_lab so that its runs are stopped and healed before the labs go down."""
    runs = FaultRuns(request.config)
    request.addfinalizer(runs.close)
    return runs


def _full_tracebacks(item: pytest.Item) -> bool:
    """--full-trace or --tb=long/native: the user wants nslab's own frames (debugging nslab itself)."""
    opt = item.config.option
    return bool(getattr(opt, "fulltrace", False)) or getattr(opt, "tbstyle", "auto") in ("long", "native")


def _clean_error(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """The CLI's message for an NslabError, then the last line of the test's own code that led to it."""
    text = f"nslab: {excinfo.value}"
    for entry in reversed(excinfo.traceback):
        path = str(entry.path)
        if not path.startswith(_NSLAB_DIR) and "/_pytest/" not in path and "/pluggy/" not in path:
            text += f"\n  at {path}:{entry.lineno + 1}, in {entry.name}"
            with contextlib.suppress(Exception):
                text += f"\n    {str(entry.statement).strip()}"
            break
    return text


# ------------------------------------------------------------------------------------------- pcap
def capture_available() -> bool:
    try:
        return importlib.util.find_spec("nslab.capture") is not None
    except (ImportError, ValueError):
        return False


class _Pcap:
    """The captures of one test call: a file per host, under the test's tmp directory."""

    def __init__(self, item: pytest.Item, capture: Callable[..., Any], folder: Path) -> None:
        self.item = item
        self.capture = capture
        self.folder = folder
        self.stack = contextlib.ExitStack()
        self.files: list[tuple[str, Any]] = []  # (path, its Capture)
        self.notes: list[str] = []

    def start(self, lab: Lab) -> None:
        for node in lab.plan.nodes:
            if node.kind != "host":
                continue
            ifaces = lab.plan.interfaces_of(node.name)
            if not ifaces:
                continue
            path = self.folder / f"{lab.name}-{node.name}-{ifaces[0].ifname}.pcap"
            try:
                cap = self.stack.enter_context(self.capture(lab, node.name, iface=ifaces[0].ifname,
                                                            write=str(path)))
            except Exception as exc:
                self.notes.append(f"{lab.name}/{node.name}: capture failed: {exc}")
                continue
            self.files.append((str(path), cap))

    def summary(self) -> list[str]:
        out = []
        for path, cap in self.files:
            count = getattr(cap, "count", None)
            out.append(path + (f" ({count} packets)" if isinstance(count, int) else ""))
        return out + self.notes


_current_pcap: _Pcap | None = None


def _pcap_started(lab: Lab) -> None:
    """A lab came up while a test runs (the factory called in the test body): capture it too."""
    if _current_pcap is not None:
        _current_pcap.start(lab)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    global _current_pcap
    if not item.config.getoption("nslab_pcap") or not capture_available():
        yield
        return
    capture = importlib.import_module("nslab.capture").capture
    funcargs = getattr(item, "funcargs", {})
    folder = funcargs.get("tmp_path")
    if not isinstance(folder, Path):
        factories = [v for v in funcargs.values() if isinstance(v, LabFactory)]
        factory_tmp = factories[0].tmp_path_factory if factories else None
        if factory_tmp is None:
            yield  # no lab fixture: nothing to capture
            return
        folder = factory_tmp.mktemp("nslab-pcap")
    pcap = _Pcap(item, capture, folder)
    _current_pcap = pcap
    try:
        for lab in labs_of(item):
            pcap.start(lab)
        yield
    finally:
        _current_pcap = None
        with contextlib.suppress(Exception):
            pcap.stack.close()
        item.stash[_pcap_paths_key] = pcap.summary()


__all__ = ["FaultRuns", "LabFactory", "labs_of", "report_sections", "teardown_lab", "timeline_text", "unique_name"]
