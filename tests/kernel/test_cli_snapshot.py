"""The CLI contract, byte for byte: `--help` of every object and verb, and what a few representative commands
print, compared with snapshots in tests/fixtures/cli/.

The snapshots were written by this file on the code before the CLI was reshaped (issue 10), so a refactor that
changes anything a user sees fails here. A change meant to be seen is re-recorded, and the diff reviewed:

    NSLAB_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/system/test_cli_snapshot.py \
        tests/kernel/test_cli_snapshot.py

argparse wraps help to the terminal width: COLUMNS is fixed at 100 for every snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import CliResult, NetnsFactory
from system.test_cli_snapshot import _block, _columns, _compare  # noqa: F401  (_columns: the autouse fixture)

from nslab.namespace import Namespace

Cli = Callable[..., CliResult]








@pytest.fixture
def state(netns_factory: NetnsFactory, cli: Cli) -> Namespace:
    """One namespace with a link of every kind, fixed MACs, addresses and routes; everything but lo down, so
    no counter or state moves while it is shown."""
    ns = netns_factory()
    n = ns.name
    assert n is not None
    steps = [
        ["link", "set", "lo", "up"],
        ["link", "add", "v0", "type", "veth", "peer", "v1"],
        ["link", "add", "br0", "type", "bridge"],
        ["link", "add", "vx0", "type", "vxlan", "id", "42", "remote", "192.0.2.1", "dstport", "4790"],
        ["link", "add", "mv0", "type", "macvlan", "link", "v0", "mode", "private"],
        ["link", "add", "tap0", "type", "tap", "mtu", "1400"],
        ["link", "set", "v1", "master", "br0", "alias", "port one"],
    ]
    for i, dev in enumerate(("v0", "v1", "br0", "vx0", "mv0", "tap0")):
        steps.append(["link", "set", dev, "address", f"02:00:00:00:10:{i:02x}"])
    steps += [  # routes through lo: v0 stays down, so no packet (IPv6 RS, DAD) moves a counter
        ["addr", "add", "10.9.0.1/24", "dev", "v0"], ["addr", "add", "10.9.1.1/32", "dev", "v0"],
        ["addr", "add", "fd00:9::1/64", "dev", "v0"], ["addr", "add", "10.5.0.1/24", "dev", "lo"],
        ["route", "add", "10.8.0.0/16", "dev", "lo"], ["route", "add", "10.7.0.0/16", "via", "10.5.0.2"],
        ["route", "add", "fd00:8::/64", "dev", "lo"],
    ]
    for argv in steps:
        res = cli("-n", n, *argv)
        assert res.rc == 0, (argv, res)
    return ns


@pytest.mark.kernel
def test_outputs_on_real_state(state: Namespace, cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    n = state.name
    assert n is not None
    reads = [["link", "show"], ["link", "show", "-s"], ["--json", "link", "show"], ["link", "show", "vx0"],
             ["addr", "show"], ["--json", "addr", "show", "v0"], ["route", "show"], ["route", "show", "-6"],
             ["--json", "route", "show"], ["link"], ["-s", "-s", "l", "v0"], ["-br", "link"], ["-br", "a"],
             ["neigh"], ["--json", "link", "show", "-s", "lo"]]
    refusals = [["link", "add", "br0", "type", "bridge"], ["link", "add", "mv1", "type", "macvlan", "link", "nosuch"],
                ["link", "set", "v0", "master", "vx0"], ["link", "set", "nosuch", "up"],
                ["link", "add", "t1", "type", "tap", "mtu", "70000"], ["route", "del", "10.6.0.0/16"]]
    text = "".join(_block(cli, capsys, ["-n", n, *argv], ns=n) for argv in reads + refusals)
    _compare("state.txt", text)
