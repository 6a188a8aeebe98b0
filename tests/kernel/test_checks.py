"""`checks:` in topology files: `nslab lab check` and pytest collection of *.lab.yaml, on real labs.

Traffic only flows between the lab's own namespaces. Every lab is taken down, also on failure.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import ROOT_REASON, is_root

from nslab.checks import run_checks
from nslab.cli.main import main
from nslab.lab.lab import Lab
from nslab.lab.topology import load_text

from .labkit import LabFactory

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(not is_root(), reason=ROOT_REASON)]

TOPO = """\
name: {name}
nodes: {{h1: {{}}, h2: {{}}, h3: {{}}, s1: {{kind: switch}}, r1: {{kind: router}}}}
links: [[h1, s1], [h2, s1], [r1, s1], [r1, h3]]
checks:
  - reach: [h1, h3]
    retries: 5
  - reach: [h2, h1]
    retries: 5
  - no_reach: [h1, h3]
  - port_open: {{from: h1, to: h2, port: 8080}}
    retries: 1
"""


@pytest.fixture
def lab(labs: LabFactory) -> Lab:
    return labs.add(Lab(load_text(TOPO.format(name=labs.name()), "checks-test.yaml")))


def test_results_follow_the_network(lab: Lab) -> None:
    results = run_checks(lab)
    assert [r.ok for r in results] == [True, True, False, False]
    assert "answered, expected silence" in results[2].detail
    assert "connection refused" in results[3].detail
    # Open the port in h2, and the last check passes; cut h1's link, and reach fails, no_reach passes.
    server = lab["h2"].popen([sys.executable, "-m", "http.server", "8080", "--bind", "0.0.0.0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        res = run_checks(lab, [lab.topology.checks[3]])[0]
        while not res.ok and time.monotonic() < deadline:  # until the server listens
            time.sleep(0.1)
            res = run_checks(lab, [lab.topology.checks[3]])[0]
        assert res.ok, res.detail
    finally:
        server.kill()
        server.wait()
    subprocess.run(["ip", "-n", lab["h1"].netns, "link", "set", "eth0", "down"], check=True)
    results = run_checks(lab, [lab.topology.checks[0], lab.topology.checks[2]])
    assert [r.ok for r in results] == [False, True]


def test_cli_exit_status_and_json(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "check", lab.name]) == 1
    out = capsys.readouterr().out
    assert "ok   reach h1 -> h3" in out and "FAIL no_reach h1 -> h3" in out and "2 passed, 2 failed" in out
    assert main(["lab", "check", "nosuchlab"]) == 2


REPO = str(Path(__file__).resolve().parents[2])
# Installed, nslab registers the collector through its pytest11 entry point; from a bare checkout, by -p.
INSTALLED = any(ep.name == "nslab_checks" for ep in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "nslab.pytest_checks"]


def test_pytest_collects_lab_files(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", REPO)
    pytester.makefile(".lab.yaml", net=textwrap.dedent(TOPO.format(name="ignored")))
    result = pytester.runpytest_subprocess(*PLUGIN, "-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*net.lab.yaml::reach h1 -> h3 [[]line 5[]] PASSED*",
                                 "*net.lab.yaml:9: FAIL no_reach h1 -> h3*"])
    # The lab was taken down after the file's last check: no namespace of any t?????? lab from it remains.
    assert "ignored" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_pytest_reports_a_bad_lab_file_without_traceback(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", REPO)
    pytester.makefile(".lab.yaml", bad="name: x\nnodes: {h1: {}}\nchecks:\n  - reach: [h1, zz]\n")
    result = pytester.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bad.lab.yaml:4: checks[[]0[]].reach: unknown node 'zz'*"])
    assert "Traceback" not in result.stdout.str()
