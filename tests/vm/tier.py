"""The VM tier's pytest side: which tests run in the guest, one guest session for all of them, the report.

    @pytest.mark.needs("netem")      # runs on the host where its kernel has netem, else in the guest
    @pytest.mark.vm                  # a normal test that also runs in the guest with --nslab-vm=full

On the host, the selected tests that need a feature the host kernel lacks (tests/vm/features.py probes it)
are replaced by stand-ins with the same node id; with `--nslab-vm=full` the tests of the `nslab_vm_slice`
ini list (and those marked `vm`) get a second stand-in, `NODEID@vm`. The first stand-in to run boots ONE
guest (tests/vm/runner.py), which runs pytest over all their node ids, normally; each stand-in then reports
what its test did there (passed, failed with the guest's traceback, skipped with the reason). Where no guest
can run (not root, no QEMU, no usable accelerator) they skip with the reason, or fail with
`--nslab-vm-require`. The end of the run prints the guest's figures and, per test, the features it asked
for and the kernel modules it loaded; the same goes to a JSON report (.cache/vm/report.json).
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest

from . import features, runner

GUEST_FLAG = "--nslab-vm-guest"
SUFFIX = "@vm"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("nslab-vm", "nslab VM tier (docs/vm-tier.md)")
    g.addoption("--nslab-vm", choices=("off", "needs", "full"), default="needs",
                help="off: no guest (tests needing a feature the host lacks skip); needs (default): those tests run "
                     "in one guest; full: also the nslab_vm_slice tests and those marked vm")
    g.addoption("--nslab-vm-require", action="store_true",
                help="fail, instead of skipping, the guest's tests where no guest can run")
    g.addoption("--nslab-vm-timeout", type=float, default=1800.0, metavar="S",
                help="seconds the guest may take for all its tests (default 1800)")
    g.addoption("--nslab-vm-report", default=str(runner.CACHE / "report.json"), metavar="PATH",
                help="where the JSON report of the guest's run goes (default .cache/vm/report.json)")
    g.addoption(GUEST_FLAG, action="store_true", help=argparse.SUPPRESS)  # the pytest inside the guest
    parser.addini("nslab_vm_slice", type="linelist", default=[],
                  help="node ids or paths of normal tests that also run in the guest with --nslab-vm=full")


def pytest_configure(config: pytest.Config) -> None:
    # The markers needs(...) and vm are registered in pyproject.toml.
    if config.option.nslab_vm_guest:
        config.pluginmanager.register(GuestRecorder(Path(config.option.nslab_vm_report)), "nslab-vm-recorder")


def needs_of(item: pytest.Item) -> list[str]:
    out: list[str] = []
    for mark in item.iter_markers("needs"):
        try:
            out += [n for n in features.check_names(mark.args) if n not in out]
        except features.UnknownFeature as exc:
            raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
    return out


def in_slice(item: pytest.Item, entries: list[str]) -> bool:
    """Marked vm, or named by an nslab_vm_slice entry: a node id (with all its parameters), a file or a directory."""
    if item.get_closest_marker("vm") is not None:
        return True
    nodeid = item.nodeid
    return any(nodeid == e or nodeid.startswith((e + "::", e + "[", e.rstrip("/") + "/")) for e in entries)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only what is selected goes to the guest
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.option.nslab_vm_guest:
        for item in items:
            needs_of(item)
        return
    mode = config.option.nslab_vm
    entries = config.getini("nslab_vm_slice")
    keep: list[pytest.Item] = []
    to_guest: list[GuestItem] = []
    for item in items:
        needs = needs_of(item)
        lacking = features.missing(needs) if needs else []
        if not lacking:
            keep.append(item)
            if mode == "full" and in_slice(item, entries):
                to_guest.append(GuestItem.stand_in(item, SUFFIX, needs))
        elif mode == "off":
            item.add_marker(pytest.mark.skip(reason=f"the host kernel lacks {', '.join(lacking)} and the VM tier "
                                                    "is off (--nslab-vm=off)"))
            keep.append(item)
        else:
            to_guest.append(GuestItem.stand_in(item, "", needs))
    if to_guest:
        config.stash[SESSION] = GuestSession(config, to_guest)
    items[:] = [*keep, *to_guest]  # the guest's tests last, together


class GuestFailure(Exception):
    """A test failed in the guest; the message is the guest's own report of it."""


class GuestItem(pytest.Item):
    """Stands in on the host for a test that runs in the guest."""

    def __init__(self, *, guest_nodeid: str, needs: list[str], info: tuple[Any, int | None, str],
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.guest_nodeid = guest_nodeid
        self.needs = needs
        self.info = info

    @classmethod
    def stand_in(cls, item: pytest.Item, suffix: str, needs: list[str]) -> GuestItem:
        path, lineno, domain = item.reportinfo()
        assert item.parent is not None
        new: GuestItem = cls.from_parent(item.parent, name=item.name + suffix, guest_nodeid=item.nodeid,
                                         needs=needs, info=(path, lineno, domain + suffix))
        new.own_markers = list(item.own_markers)
        new.keywords.update(item.keywords)
        new.add_marker(pytest.mark.xdist_group("nslab-vm"))  # with --dist loadgroup: one worker, one guest
        return new

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.info

    def runtest(self) -> None:
        self.config.stash[SESSION].result_of(self)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, GuestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


class GuestSession:
    """The one guest run of a host session, started by the first stand-in that runs."""

    def __init__(self, config: pytest.Config, items: list[GuestItem]) -> None:
        self.config = config
        self.items = items
        self.ran = False
        self.cannot: str | None = None  # why no guest could run
        self.result: runner.Result | None = None
        self.report: dict[str, Any] = {}
        self.log = runner.CACHE / "guest.log"

    def result_of(self, item: GuestItem) -> None:
        if not self.ran:
            self.ran = True
            self._run()
        if self.cannot is not None:
            if self.config.option.nslab_vm_require:
                raise GuestFailure(f"no guest could run (--nslab-vm-require): {self.cannot}")
            _skip(f"VM tier: {self.cannot}")
        rec = self.report.get("tests", {}).get(item.guest_nodeid)
        if rec is None or self.report.get("running") == item.guest_nodeid:
            res = self.result
            why = "" if res is None else f"guest exit status {res.status} after {res.wall_s:.0f} s"
            if self.report.get("running") == item.guest_nodeid:
                why += "; this test was running when the guest stopped"
            if res is not None and res.status in (runner.EXIT_TIMEOUT, runner.EXIT_NO_STATUS):
                why += f"; last console lines:\n{res.console}"
            raise GuestFailure(f"no result from the guest for {item.guest_nodeid} ({why}); its output: {self.log}")
        outcome = rec["outcome"]
        if outcome == "failed":
            raise GuestFailure(f"in the guest (kernel {self.report.get('kernel')}), {rec.get('when')}:\n"
                               f"{rec.get('longrepr', '')}")
        if outcome == "skipped":
            _skip(f"in the guest: {rec.get('reason', '')}")
        if outcome == "xfailed":
            pytest.xfail(f"in the guest: {rec.get('reason', '')}")

    def _run(self) -> None:
        config = self.config
        try:
            accel = runner.availability()
        except runner.CannotRun as exc:
            self.cannot = str(exc)
            return
        nodeids = list(dict.fromkeys(i.guest_nodeid for i in self.items))
        rootdir = str(config.rootpath)
        say = _Say(config, self.log)
        say.line(f"nslab vm: {len(nodeids)} tests in one guest on Debian's stock kernel ({accel}); "
                 f"output also in {self.log}")
        with tempfile.TemporaryDirectory(prefix="nslab-vm-share-") as share:
            (Path(share) / "args").write_text("".join(n + "\n" for n in nodeids))
            report = Path(share) / "report.json"
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--tb={config.option.tbstyle}",
                   GUEST_FLAG, f"--nslab-vm-report={report}", f"@{share}/args"]
            guest = runner.Guest(timeout=config.option.nslab_vm_timeout, shares=[share], cwd=rootdir,
                                 overlays=[*runner.OVERLAYS, rootdir, *_python_overlays(rootdir)])
            try:
                self.result = guest.run(cmd, say.sink, say.line)
            except runner.CannotRun as exc:
                self.cannot = str(exc)
                return
            finally:
                say.close()
            try:
                self.report = json.loads(report.read_text())
            except (OSError, ValueError):
                self.report = {}
        res = self.result
        self.report["run"] = {"accel": res.accel, "boot_s": res.boot_s, "wall_s": round(res.wall_s, 1),
                              "status": res.status, "tests": nodeids, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
        out = Path(config.option.nslab_vm_report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.report, indent=1) + "\n")


def _skip(reason: str) -> NoReturn:
    # Reported at the test's own location, as a skip marker's would be (not at this line).
    raise pytest.skip.Exception(reason, _use_item_location=True)


def _python_overlays(rootdir: str) -> list[str]:
    """This interpreter's directories when they lie where the guest has its own tmpfs (it must see them)."""
    dirs = []
    for p in dict.fromkeys((sys.prefix, sys.base_prefix)):
        if any(p == t or p.startswith(t + "/") for t in runner.TMPFS) and not p.startswith(rootdir + "/"):
            dirs.append(p)
    return dirs


class _Say:
    """The guest's output as it comes, to the terminal (around pytest's capture) and to a log file."""

    PREFIX = "  guest| "

    def __init__(self, config: pytest.Config, log: Path) -> None:
        self.tr = config.pluginmanager.get_plugin("terminalreporter")
        self.capman = config.pluginmanager.get_plugin("capturemanager")
        log.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(log, "wb")  # noqa: SIM115 (closed in close())
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.bol = False  # at the start of a line on the terminal (pytest's progress is on the current one)

    def _term(self, text: str) -> None:
        if self.tr is None or not text:
            return
        if self.capman is not None:
            with self.capman.global_and_fixture_disabled():
                self.tr.write(text, flush=True)
        else:
            self.tr.write(text, flush=True)

    def line(self, text: str) -> None:
        self.file.write(text.encode() + b"\n")
        self.file.flush()
        self._term(("" if self.bol else "\n") + text + "\n")
        self.bol = True

    def sink(self, port: str, data: bytes) -> None:
        self.file.write(data)
        self.file.flush()
        out = []
        for i, part in enumerate(self.decoder.decode(data).split("\n")):
            if i:
                out.append("\n")
                self.bol = True
            if part:
                out.append(self.PREFIX + part if self.bol else part)
                self.bol = False
        self._term("".join(out))

    def close(self) -> None:
        if not self.bol:
            self._term("\n")
            self.bol = True
        self.file.close()


SESSION = pytest.StashKey[GuestSession]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is None or not session.ran:
        return
    tr = terminalreporter
    tr.section("nslab VM tier")
    if session.cannot is not None:
        tr.write_line(f"no guest ran: {session.cannot}")
        return
    res = session.result
    assert res is not None
    tests: dict[str, Any] = session.report.get("tests", {})
    counts: dict[str, int] = {}
    for rec in tests.values():
        counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
    boot = f"{res.boot_s:.1f} s" if res.boot_s is not None else "?"
    tr.write_line(f"guest: kernel {session.report.get('kernel', '?')}, {res.accel}, 1 vCPU, 1 GiB; booted in {boot}; "
                  f"{res.wall_s:.0f} s wall for {len(tests)} tests ("
                  + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) + f"); exit {res.status}")
    tr.write_line(f"report: {config.option.nslab_vm_report}; output: {session.log}")
    tr.write_line(f"{'outcome':8} {'s':>6}  {'test':70} needs / modules it loaded")
    for nodeid, rec in tests.items():
        needs = ",".join(rec.get("needs", [])) or "-"
        mods = ",".join(rec.get("modules", [])) or "-"
        tr.write_line(f"{rec['outcome']:8} {rec.get('duration', 0):6.1f}  {nodeid:70} {needs} / {mods}")


# ---- inside the guest ------------------------------------------------------------------------------------
def _modules() -> set[str]:
    try:
        with open("/proc/modules") as f:
            return {line.split()[0] for line in f}
    except OSError:
        return set()


class GuestRecorder:
    """In the guest: checks each test's features, records its outcome and the modules it loaded, as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, dict[str, Any]] = {}
        self.running: str | None = None
        self.exitstatus: int | None = None

    def _rec(self, nodeid: str) -> dict[str, Any]:
        return self.tests.setdefault(nodeid, {"outcome": "passed", "duration": 0.0, "needs": [], "modules": []})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        needs = needs_of(item)
        self._rec(item.nodeid)["needs"] = needs
        lacking = features.missing(needs)
        if lacking:
            said = "; ".join(f"{n}: {features.probe(n)[1]}" for n in lacking)
            pytest.fail(f"the guest's kernel {os.uname().release} lacks {', '.join(lacking)} ({said})", pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        before = _modules()
        self.running = item.nodeid
        self._dump()
        try:
            return (yield)
        finally:
            self._rec(item.nodeid)["modules"] = sorted(_modules() - before)
            self.running = None
            self._dump()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rec = self._rec(report.nodeid)
        rec["duration"] = round(rec["duration"] + report.duration, 2)
        if report.failed:
            if rec["outcome"] != "failed":
                rec.update(outcome="failed", when=report.when, longrepr=report.longreprtext)
        elif report.skipped and rec["outcome"] == "passed":
            if hasattr(report, "wasxfail"):
                rec.update(outcome="xfailed", reason=report.wasxfail)
            else:
                lr = report.longrepr
                rec.update(outcome="skipped", reason=lr[2] if isinstance(lr, tuple) else str(lr))
        elif report.passed and report.when == "call" and hasattr(report, "wasxfail"):
            rec["outcome"] = "xpassed"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.exitstatus = int(exitstatus)
        self._dump()

    def _dump(self) -> None:
        """The record so far, replaced whole (after every test: a guest killed at its timeout still tells)."""
        needed = sorted({f for r in self.tests.values() for f in r["needs"]})
        data = {"kernel": os.uname().release, "exitstatus": self.exitstatus, "running": self.running,
                "features": {n: features.probe(n)[0] for n in needed}, "tests": self.tests}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)
