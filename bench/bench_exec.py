"""Running `true` inside a namespace: nslab's API against a plain subprocess.run, in the same run.

Methods, interleaved call by call (the order rotates every round, to cancel drift):
  plain     subprocess.run(["true"])                    (the baseline, no namespace)
  api       Namespace.create(NS) then ns.run(["true"])  (parked thread: the fast path)
  ipexec    subprocess.run(["ip", "netns", "exec", NS, "true"])
  run_full  ns.run_full(["true"])                       (ip netns exec semantics through nslab's CLI)

Goal (DESIGN.md §6): api within 1.2x of plain. Prints the median ms per call and the ratio to plain.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import _common as C

from nslab.namespace import Namespace

NS = C.PREFIX + "exec"
GOAL = 1.2


def main() -> int:
    args = C.parser(__doc__).parse_args()
    n_main, n_full, warm = (100, 10, 10) if args.quick else (300, 40, 30)
    C.sigterm_as_interrupt()
    print(C.machine_info())
    if os.path.lexists(os.path.join(C.NETNS_DIR, NS)):
        print(f"namespace {NS} already exists (a previous run?): delete it with 'ip netns del {NS}'",
              file=sys.stderr)
        return 1
    ns = None
    try:
        ns = Namespace.create(NS)
        env = dict(os.environ, PYTHONPATH=C.ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        methods: dict[str, tuple[Callable[[], object], int]] = {
            "plain": (lambda: subprocess.run(["true"], check=True), n_main),
            "api": (lambda: ns.run(["true"], check=True), n_main),
            "ipexec": (lambda: subprocess.run(["ip", "netns", "exec", NS, "true"], check=True), n_main),
            "run_full": (lambda: ns.run_full(["true"], check=True, env=env,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), n_full),
        }
        skipped: dict[str, str] = {}
        for name, (fn, _n) in list(methods.items()):
            try:
                for _ in range(warm if name != "run_full" else 2):
                    fn()
            except (subprocess.CalledProcessError, OSError) as exc:
                err = getattr(exc, "stderr", b"") or b""
                tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
                skipped[name] = f"{exc}" + (f" ({tail[0]})" if tail else "")
                del methods[name]
        # Correctness: the api really runs inside the namespace.
        own = os.readlink("/proc/self/ns/net")
        child = ns.run(["readlink", "/proc/self/ns/net"], capture_output=True, text=True).stdout.strip()
        want = f"net:[{os.stat(os.path.join(C.NETNS_DIR, NS)).st_ino}]"
        assert child == want and child != own, (child, want, own)

        times: dict[str, list[float]] = {m: [] for m in methods}
        order = list(methods)
        load0 = C.loadavg()
        for r in range(n_main):
            rot = order[r % len(order):] + order[: r % len(order)]
            for name in rot:
                fn, n = methods[name]
                if r >= n:
                    continue
                t0 = C.clock()
                fn()
                times[name].append(C.clock() - t0)
        base = C.median(times["plain"])
        rows = []
        for name, ts in times.items():
            med = C.median(ts)
            rows.append([name, len(ts), med * 1e3, min(ts) * 1e3, med / base])
        print(f"\nrunning `true`: N={n_main} interleaved (run_full N={n_full}), warm-up {warm}; "
              f"load {load0} -> {C.loadavg()}")
        print(C.table(["method", "n", "median ms", "min ms", "ratio/plain"], rows))
        for name, why in skipped.items():
            print(f"{name}: skipped, it failed during warm-up: {why}")
        ratio = C.median(times["api"]) / base
        verdict = "MET" if ratio <= GOAL else "MISSED"
        print(f"goal: api within {GOAL}x of plain: {ratio:.2f}x -> {verdict}")
    finally:
        if ns is not None:
            ns.close()
        C.delete_netns_exact([NS])
        C.check_clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
