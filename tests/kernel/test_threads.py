"""Every thread nslab starts blocks SIGINT and SIGTERM from its first instruction (nslab.threads).

The kernel delivers a process-directed signal to any thread that does not block it; Python then runs the
handler in the main thread at once, also inside `shielded()` cleanups. So:
- a static check: no module of nslab starts a thread but through nslab.threads;
- in a fresh interpreter that exercises nslab's features (namespaces, a lab, reach, capture, perf,
  services, faults, probes, the demo), every new thread's mask is read at its first Python call
  (threading.setprofile) and every thread's SigBlk in /proc/self/task/*/status is sampled meanwhile;
- programs nslab starts do not inherit the block (else they could not be stopped with SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, ROOT_REASON, RUN_PREFIX, is_root, lab_name

EXERCISE = r"""
import io, json, os, signal, subprocess, sys, threading, time
sys.path[:0] = [sys.argv[1]]
LAB, NS, DEMO = sys.argv[2:5]
WANT = {signal.SIGINT, signal.SIGTERM}
BITS = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
first, sampled, children = [], set(), {}
SAMPLER = "test-sampler"

def hook(frame, event, arg):
    t = threading.current_thread()
    if t.name != SAMPLER:
        first.append([t.name, WANT <= signal.pthread_sigmask(signal.SIG_BLOCK, [])])
    sys.setprofile(None)

# The one documented opening: a thread forking a program opens its mask for the fork (nslab.threads).
# Count entries and exits per thread, so that the sampler can tell a read that overlapped one.
import contextlib
from nslab import threads as nslab_threads
windows = {}
_real_unblocked = nslab_threads.signals_unblocked

@contextlib.contextmanager
def counted_unblocked():
    tid = threading.get_native_id()
    windows[tid] = windows.get(tid, 0) + 1
    try:
        with _real_unblocked():
            yield
    finally:
        windows[tid] += 1

nslab_threads.signals_unblocked = counted_unblocked

def unblocked(skip):
    main = threading.main_thread().native_id
    out = []
    for tid in os.listdir("/proc/self/task"):
        tid = int(tid)
        before = windows.get(tid, 0)
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                st = dict(l.split(":", 1) for l in f if ":" in l)
        except OSError:
            continue
        if before % 2 or windows.get(tid, 0) != before:
            continue  # forking a program just now
        if tid not in (main, skip) and int(st["SigBlk"], 16) & BITS != BITS:
            names = {t.native_id: t.name for t in threading.enumerate()}
            out.append(names.get(tid, f"tid {tid}"))
    return out

stop = threading.Event()
sampler_tid = []
def sample():
    signal.pthread_sigmask(signal.SIG_BLOCK, WANT)  # it outlives its join a moment: not to be mistaken
    me = threading.get_native_id()
    sampler_tid.append(me)
    while not stop.is_set():
        sampled.update(unblocked(me))
        time.sleep(0.002)

sampler = threading.Thread(target=sample, name=SAMPLER, daemon=True)
sampler.start()
threading.setprofile(hook)

def sigblk(run):
    out = run(["grep", "SigBlk", "/proc/self/status"], capture_output=True, text=True).stdout
    return int(out.split()[1], 16) & BITS

from nslab import probe, services, threads
from nslab.demo import walkthrough
from nslab.lab.lab import Lab
from nslab.namespace import Namespace

with Namespace.create(NS) as ns:
    children["Namespace.run"] = sigblk(ns.run)
    children["spawn windows"] = sum(windows.values())
    ns.link("lo").up()
    got = []
    ready, done = threading.Event(), threading.Event()
    lt = threads.Thread(target=lambda: probe.listen(0, out=got.append, ready=ready, stop=done, netns=NS),
                        name="test-listener")
    lt.start()
    ready.wait(5)
    probe.connect("127.0.0.1", int(got[0].split()[-1]), timeout=2, netns=NS)
    done.set(); lt.join()

lab = Lab.topo("single", 3, name=LAB)
try:
    lab.up()
    children["LabNode.run"] = sigblk(lab["h1"].run)
    lab.reach()
    with lab.capture("h1") as cap:
        lab["h1"].run(["ping", "-c2", "-i0.2", "h2"], capture_output=True)
    lab.perf("h1", "h2", seconds=0.3, warmup=0.1)
    svc = services.start(lab, "h2", "sleeper", ["sleep", "60"])
    children["service stop status"] = svc.stop(timeout=5)
    lab.partition(["h1"], ["h2", "h3"])
    lab.heal()
finally:
    services.forget(LAB)
    lab.down()
walkthrough(out=io.StringIO(), name=DEMO)
stop.set(); sampler.join()
sampled.update(unblocked(sampler_tid[0]))
print(json.dumps({"first": first, "sampled": sorted(sampled), "children": children}))
"""


@pytest.mark.kernel
def test_every_thread_nslab_starts_blocks_sigint_and_sigterm(tmp_path: Path) -> None:
    if not is_root():
        pytest.skip(ROOT_REASON)
    lab, ns, demo = lab_name(), f"{RUN_PREFIX}thr", f"{RUN_PREFIX}thr-demo"
    try:
        res = subprocess.run([sys.executable, "-c", EXERCISE, REPO, lab, ns, demo], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
    finally:
        subprocess.run([sys.executable, "-m", "nslab", "lab", "down", lab], capture_output=True, cwd=REPO)
        for n in (ns, demo):
            if os.path.lexists(f"/run/netns/{n}"):
                subprocess.run(["ip", "netns", "del", n], capture_output=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    names = {name for name, _ in out["first"]}
    # The features ran on their threads (else this test would prove nothing).
    for expected in ("nslab-netns-door", "nslab-up_0", "nslab-demo-listener", "nslab-perf-server"):
        assert expected in names, f"{expected} never started: {sorted(names)}"
    assert any(n.startswith("nslab-parked-") for n in names) and any(n.startswith("nslab-capture-") for n in names)
    assert any(n.startswith("nslab-in-") for n in names)
    open_at_start = sorted({name for name, blocked in out["first"] if not blocked})
    assert open_at_start == [], f"threads with SIGINT/SIGTERM open at their first instruction: {open_at_start}"
    assert out["sampled"] == [], f"threads seen with SIGINT/SIGTERM open: {out['sampled']}"
    # Programs started by nslab's threads get an open mask, and a service stops on SIGTERM, not SIGKILL.
    assert out["children"]["Namespace.run"] == 0 and out["children"]["LabNode.run"] == 0, out["children"]
    assert out["children"]["service stop status"] == -signal.SIGTERM, out["children"]
    assert out["children"]["spawn windows"] >= 2  # the sampler's exception was exercised and counted
