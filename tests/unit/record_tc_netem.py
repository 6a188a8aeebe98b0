"""Record the netem options `tc` (iproute2) sends to the kernel, as the oracle of nslab's own encoder.

    python3 tests/unit/record_tc_netem.py > tests/unit/data/tc_netem_options.json   (as root)

Each case runs `tc qdisc add dev lo root handle 5e1a: netem ARGS` under strace in a throw-away network
namespace (`unshare --net`: nothing outside changes; without netem in the kernel the request is refused,
but its bytes are already written), and keeps the payload of the request's TCA_OPTIONS attribute in hex.
Not recorded: `duplicate P CORR`: tc 6.1 parses the correlation but sends it only when another correlation
is given (nslab's duplicate is nftables', so nslab never sends a duplicate correlation).
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tempfile

CASES = [
    "delay 50ms",
    "delay 100ms 10ms",
    "delay 100ms 10ms 25%",
    "delay 20ms 5ms distribution normal",
    "delay 20ms 5ms 10% distribution pareto",
    "delay 40ms 8ms distribution paretonormal",
    "delay 1.5s",
    "delay 250us 50us",
    "delay 10s 1s",
    "loss 1%",
    "loss 1% 10%",
    "loss 0.01%",
    "loss 100%",
    "loss 33.33%",
    "loss gemodel 1%",
    "loss gemodel 1% 10%",
    "loss gemodel 1% 10% 70%",
    "loss gemodel 1% 10% 70% 0.1%",
    "loss state 1%",
    "loss state 1% 30%",
    "loss state 1% 30% 0%",
    "loss state 1% 30% 5% 20% 0.5%",
    "duplicate 5%",
    "corrupt 1%",
    "corrupt 1% 25%",
    "delay 10ms reorder 25%",
    "delay 10ms reorder 25% 50%",
    "delay 10ms reorder 25% 50% gap 5",
    "rate 10mbit",
    "rate 100gbit",
    "limit 5000 delay 30ms",
    "delay 30ms 3ms 20% loss 2% 5% duplicate 1% corrupt 0.5% 10% reorder 10% gap 3",
]


def options(argv: list[str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace")
        subprocess.run(["unshare", "--net", "strace", "-qq", "-e", "trace=sendmsg", "-e", "write=3", "-o", out,
                        "tc", "qdisc", "add", "dev", "lo", "root", "handle", "5e1a:", "netem", *argv],
                       capture_output=True, check=False)
        with open(out) as f:
            text = f.read()
    # strace's dump lines: " | 00010  00 00 ... 00  text |": the hex is columns 10-58
    data = bytes.fromhex("".join(line[10:59] for line in text.splitlines() if re.match(r" \| [0-9a-f]{5} ", line)))
    off = 0
    while off < len(data):
        size, kind = struct.unpack_from("=IH", data, off)
        if kind == 36:  # RTM_NEWQDISC
            body = data[off + 16 + 20: off + size]
            a = 0
            while a < len(body):
                alen, atype = struct.unpack_from("=HH", body, a)
                if atype == 2:  # TCA_OPTIONS
                    return body[a + 4: a + alen].hex()
                a += (alen + 3) & ~3
        off += (size + 3) & ~3
    raise SystemExit(f"no TCA_OPTIONS recorded for {argv}: {text[:500]}")


if __name__ == "__main__":
    version = subprocess.run(["tc", "-V"], capture_output=True, text=True).stdout.strip()
    json.dump({"tc": version, "cases": {c: options(c.split()) for c in CASES}}, sys.stdout, indent=1)
    sys.stdout.write("\n")
