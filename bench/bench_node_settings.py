"""What the nodes' own settings (issue 12) add to `lab up`: single,N as a file, plain against the same file with
every host carrying an env, two sysctls (one of its interface), a loopback address and a static route, and
against that plus one exec command (`true`) per host. Interleaved round by round, medians, ratios to plain.

  python bench/bench_node_settings.py [--quick] [-n N]

Everything is named nslabb-* and taken down, also on failure or Ctrl-C.
"""

from __future__ import annotations

import secrets
import sys

import _common as C

from nslab.lab.lab import Lab
from nslab.lab.topology import load_text


def topology(n: int, settings: bool, exec_: bool) -> str:
    lines = ["name: x", "nodes:", "  s1: {kind: switch}"]
    for i in range(1, n + 1):
        extra = []
        if settings:
            peer = f"h{i % n + 1}"
            extra += ['env: {ME: "${node}"}',
                      "sysctls: {net.ipv4.conf.all.rp_filter: 0, net.ipv4.conf.eth0.arp_ignore: 1}",
                      f"loopback: [10.200.{i // 250}.{i % 250 + 1}/32]",
                      f"routes: [{{to: 10.201.0.0/16, via: {peer}}}]"]
        if exec_:
            extra.append("exec: [[true]]")
        lines.append(f"  h{i}: {{{', '.join(extra)}}}")
    lines.append("links:")
    lines += [f"  - [h{i}, s1]" for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


def up_down(text: str) -> float:
    lab = Lab(load_text(text, "bench.yaml"))
    lab.topology.name = C.PREFIX + secrets.token_hex(2)
    lab.plan  # noqa: B018  (planned before the clock starts, as `lab up FILE` does at load)
    try:
        t0 = C.clock()
        lab.up()
        return C.clock() - t0
    finally:
        lab.down()


def main() -> int:
    p = C.parser(__doc__)
    p.add_argument("-n", type=int, default=100, help="hosts (default 100)")
    args = p.parse_args()
    C.sigterm_as_interrupt()
    rounds = 3 if args.quick else 7
    kinds = {"plain": topology(args.n, False, False), "settings": topology(args.n, True, False),
             "settings+exec": topology(args.n, True, True)}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    print(C.machine_info())
    for _ in range(rounds):
        for kind, text in kinds.items():
            times[kind].append(up_down(text))
    base = C.median(times["plain"])
    rows = [(kind, f"{C.median(ts):.3f}", f"{C.median(ts) / base:.2f}x") for kind, ts in times.items()]
    print(C.table(("single," + str(args.n), "up median (s)", "vs plain"), rows))
    return 0 if C.check_clean() else 1


if __name__ == "__main__":
    sys.exit(main())
