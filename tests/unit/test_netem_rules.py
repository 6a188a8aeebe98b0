"""The rules of netem impairments, profiles and `between:` (pure: no root, no kernel): classes of bad input
give a UsageError (exit 2) naming the field (the file's line, or the CLI option), and the combinations that
netem can do become the right qdisc."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CliResult

from nslab import faults, netem
from nslab.cli.lab_faults import option_name
from nslab.errors import FeatureMissing, UsageError
from nslab.lab import reconcile as rc
from nslab.lab.plan import make_plan
from nslab.lab.profiles import BUILTIN, expand, resolve
from nslab.lab.topology import load_text
from nslab.netem import Netem, check_values


def bad(values: dict[str, str], match: str, name: object = None) -> str:
    with pytest.raises(UsageError) as e:
        resolve(values, None, name or (lambda k: k))  # type: ignore[arg-type]
    assert e.value.exit_code == 2
    text = e.value.message + " " + (e.value.hint or "")
    assert match in text, text
    return text


@pytest.mark.parametrize(("values", "match"), [
    ({"delay": "-5ms"}, "invalid delay '-5ms'"),
    ({"delay": "11s"}, "outside 0-10 s"),
    ({"delay": "100 years"}, "invalid delay"),
    ({"delay": "0.5us"}, "resolution"),
    ({"jitter": "1e3ms"}, "invalid jitter"),
    ({"delay": "10ms", "jitter": "20ms"}, "jitter 20ms is larger than delay 10ms"),
    ({"jitter": "5ms"}, "jitter without delay"),
    ({"delay": "10ms", "distribution": "normal"}, "distribution needs jitter"),
    ({"delay": "10ms", "jitter": "1ms", "distribution": "gauss"}, "invalid distribution 'gauss'"),
    ({"delay": "10ms", "jitter": "1ms", "delay_correlation": "150%"}, "outside 0-100"),
    ({"delay": "10ms", "jitter": "1ms", "delay_correlation": "-1%"}, "outside 0-100"),
    ({"loss": "101%"}, "outside 0-100"),
    ({"loss": "1%", "loss_correlation": "100.5"}, "outside 0-100"),
    ({"loss_correlation": "20%"}, "loss_correlation needs loss"),
    ({"reorder": "5%"}, "reorder needs delay"),
    ({"delay": "10ms", "gap": "5"}, "gap needs reorder"),
    ({"delay": "10ms", "reorder": "5%", "gap": "1.5"}, "invalid gap"),
    ({"corrupt_correlation": "5%"}, "corrupt_correlation needs corrupt"),
    ({"limit": "0", "delay": "1ms"}, "hold no packet"),
    ({"limit": "ten"}, "invalid limit"),
    ({"loss_model": "gilbert 1%"}, "invalid loss_model"),
    ({"loss_model": "gemodel"}, "invalid loss_model"),
    ({"loss_model": "gemodel 1% 2% 3% 4% 5%"}, "invalid loss_model"),
    ({"loss_model": "gemodel 0%"}, "nothing is ever lost"),
    ({"loss_model": "state 1% 200%"}, "outside 0-100"),
    ({"loss": "1%", "loss_model": "gemodel 1%"}, "both set"),
    ({"profile": "wna"}, "did you mean 'wan'"),
    ({"rate": "10 furlongs"}, "invalid rate"),
])
def test_bad_values_name_the_field(values: dict[str, str], match: str) -> None:
    bad(values, match)


def test_cli_names_the_option() -> None:
    bad({"delay": "10ms", "jitter": "1ms", "delay_correlation": "300"}, "--delay-correlation", option_name)
    bad({"delay": "10ms", "jitter": "20ms"}, "--jitter 20ms is larger than --delay 10ms", option_name)
    bad({"profile": "nope"}, "unknown --profile 'nope'", option_name)


def test_cli_refuses_bad_values_with_exit_2_before_touching_a_lab(cli: object) -> None:
    run = cli  # conftest's in-process CLI
    for argv, words in [
        (["--delay", "-5ms"], "--delay"), (["--delay", "20s"], "--delay"), (["--distribution", "gauss"], "gauss"),
        (["--delay-correlation", "150%"], "--delay-correlation"), (["--gap", "x"], "--gap"),
        (["--loss-model", "markov 1%"], "--loss-model"), (["--profile", "lna"], "'lan'"),
        (["--loss", "120%"], "outside 0-100"), (["--direction", "a-b", "--limit", "-1"], "--limit"),
    ]:
        res: CliResult = run("lab", "impair", "nolab-s19n", "a", "b", *argv)  # type: ignore[operator]
        assert res.rc == 2 and words in res.err, (argv, res)


def test_the_netem_a_direction_needs() -> None:
    assert Netem.from_values({}) is None and Netem.from_values({"limit": 5000}) is None
    v = check_values({"delay": "50ms", "jitter": "5ms", "distribution": "uniform", "reorder": "0"})
    assert v == {"delay": 0.05, "jitter": 0.005, "distribution": "", "reorder": 0.0}
    assert Netem.from_values(v) == Netem(delay=0.05, jitter=0.005)
    # Random loss stays nftables' (at the receiver) unless netem must correlate it.
    imp = faults.Impairment(loss=5.0, netem={"delay": 0.01})
    assert imp.nft_loss() == 5.0 and imp.qdisc() == Netem(delay=0.01)
    imp = faults.Impairment(loss=5.0, netem={"loss_correlation": 25.0})
    assert imp.nft_loss() is None and imp.qdisc() == Netem(loss=5.0, loss_correlation=25.0)
    assert Netem(delay=0.02, jitter=0.002, distribution="pareto").text() == "delay 20ms 2ms distribution pareto"
    assert Netem.from_json(Netem(delay=0.1, gap=3, reorder=5.0).to_json()) == Netem(delay=0.1, gap=3, reorder=5.0)


def test_the_record_keeps_netem_values() -> None:
    st = faults.FaultState("x", impair={("a", "eth0", "b", "eth0"): faults.Impairment(rate=10**6,
                                                                                     netem={"delay": 0.05})})
    back = faults.FaultState.from_json(st.to_json())
    assert back.impair == st.impair
    (f,) = faults.describe(back)
    assert f["delay"] == 0.05 and f["netem"] == "delay 50ms"
    assert faults.describe_line(f) == "impair a:eth0 -> b:eth0: rate 1mbit, netem delay 50ms"


def test_profiles_expand_under_the_values_given() -> None:
    assert expand({"profile": "wan", "loss": "2%"}) == {**BUILTIN["wan"], "loss": "2%"}
    mine = {"wan": {"delay": "1ms"}, "dsl": {"delay": "20ms", "rate": "8mbit"}}
    assert expand({"profile": "wan"}, mine) == {"delay": "1ms"}  # a file's profile shadows a built-in one
    for name in BUILTIN:  # every built-in profile is one netem can do
        resolve({"profile": name})


def test_missing_distribution_table_is_a_feature_error(tmp_path: Path) -> None:
    with pytest.raises(FeatureMissing) as e:
        netem.table_path("normal", [str(tmp_path)])
    assert e.value.exit_code == 1 and "normal.dist" in e.value.message and "iproute2" in (e.value.hint or "")
    (tmp_path / "bad.dist").write_text("# not numbers\n1 2 three\n")
    with pytest.raises(FeatureMissing, match="not a netem distribution table"):
        netem.parse_table((tmp_path / "bad.dist").read_text(), "bad.dist")
    assert netem.parse_table("# c\n 1 -2\n0x10\n", "t") == [1, -2, 16]


TOPO = "name: x\nnodes: {a1: {}, a2: {}, b1: {}, b2: {}}\nlinks:\n  - [a1, a2]\n  - [a2, b1]\n  - [b1, b2]\n"


def test_file_errors_name_file_line_and_field() -> None:
    for extra, words in [
        ("    impair: {delay: 5ms, jitter: 10ms}\n", "t.yaml:6: links[1].impair: jitter 10ms is larger than delay"),
        ("    impair: {profile: wna}\n", "t.yaml:6: links[1].impair.profile: unknown profile 'wna'"),
        ("    impair: {\"a2->b1\": {distribution: normal}}\n", "links[1].impair.a2->b1: distribution needs jitter"),
        ("    impair: {both: {delay: 5ms}, \"a2->b1\": {jitter: 9ms}}\n", "jitter 9ms is larger than delay 5ms"),
        ("    impair: {corrupt: 101%}\n", "links[1].impair.corrupt: invalid corrupt percentage"),
    ]:
        text = TOPO.replace("  - [a2, b1]\n", "  - endpoints: [a2, b1]\n" + extra)
        with pytest.raises(UsageError) as e:
            load_text(text, "t.yaml")
        assert words in e.value.message, e.value.message
    for extra, words in [
        ("between:\n  - {a: [a1], b: [zz], delay: 1ms}\n", "t.yaml:8: between[0].b: unknown node 'zz'"),
        ("between:\n  - {a: [a1], b: [b2], delay: 1ms}\n", "no point-to-point link joins"),
        ("between:\n  - {a: [a1, a2], b: [a2], delay: 1ms}\n", "'a2' is on both sides"),
        ("between:\n  - {a: [a2], b: [b1]}\n", "no impairment given"),
        ("between:\n  - {a: [a2], b: [b1], delay: 1ms, jitter: 2ms}\n", "jitter 2ms is larger"),
        ("between:\n  - {a: [a2], b: [b1], dely: 1ms}\n", "did you mean 'delay'"),
        ("profiles:\n  Slow: {delay: 1ms}\n", "invalid profile name 'Slow'"),
        ("profiles:\n  slow: {delay: 1ms, profile: wan}\n", "cannot name another profile"),
        ("profiles:\n  slow: {delay: -1ms}\n", "profiles.slow: invalid delay"),
    ]:
        with pytest.raises(UsageError) as e:
            load_text(TOPO + extra, "t.yaml")
        assert words in e.value.message + " " + (e.value.hint or ""), e.value.message


def test_between_regions_in_one_line_and_the_links_own_values_win() -> None:
    text = (TOPO.replace("  - [a2, b1]\n", "  - endpoints: [a2, b1]\n    impair: {\"b1->a2\": {profile: slow}}\n")
            + "profiles:\n  slow: {delay: 20ms, rate: 2mbit}\n"
            + "between:\n  - {a: [a1, a2], b: [b1, b2], delay: 40ms, jitter: 4ms}\n")
    plan = make_plan(load_text(text, "t.yaml"))
    got = {(i.src, i.dst): (i.values, i.rate) for i in plan.impairments}
    assert got == {("a2", "b1"): ({"delay": 0.04, "jitter": 0.004}, None),
                   ("b1", "a2"): ({"delay": 0.02, "jitter": 0.004}, 2_000_000)}  # a1-a2, b1-b2: inside a region
    assert all(i.netem == ("delay", "jitter") for i in plan.impairments)


def test_reconcile_reads_the_kind_of_nslabs_qdisc() -> None:
    plan = make_plan(load_text(TOPO, "t.yaml"))
    q = Netem(delay=0.05)
    end = ("a2", "eth1")
    want = rc.desired(plan, rc.Faults(rates={end: 10**6}, netem={end: q}), ["a2"])["a2"]

    def seen(shape: dict[str, tuple[str, bool]]) -> rc.SeenNode:
        links = {i.ifname: rc.SeenLink(n, "veth", True, None, 1500) for n, i in enumerate(want.ifaces, 2)}
        addrs = {i.ifname: frozenset(i.addresses) for i in want.ifaces}
        return rc.SeenNode(links=links, addresses=addrs, shaped=frozenset(shape), shape=shape)

    def changes(shape: dict[str, tuple[str, bool]]) -> list[rc.Change]:
        return [c for c in rc.diff_node(want, seen(shape), "")[0] if c.kind in ("rate", "unrate")]

    assert changes({"eth1": ("netem", True)}) == []
    for wrong in ({}, {"eth1": ("tbf", False)}, {"eth1": ("netem", False)}):
        (c,) = changes(wrong)
        assert (c.kind, c.ifname, c.rate, c.netem) == ("rate", "eth1", 10**6, q)
        assert "netem (delay 50ms) and rate limit 1000000bit on eth1" in c.line(done=False)
    (c,) = [c for c in changes({"eth1": ("netem", True), "eth0": ("netem", False)}) if c.kind == "unrate"]
    assert c.ifname == "eth0"


def test_between_sides_may_name_groups_and_replicated_nodes() -> None:
    """A region declared once as a group (or a replicated node) joins another region in one `between:` line."""
    from nslab.lab.plan import make_plan
    from nslab.lab.topology import load_text

    text = """\
name: regions
groups:
  eu: {members: [eu-r1, eu-h]}
nodes:
  eu-r1: {kind: router}
  eu-h: {count: 2}
  us-r1: {kind: router}
  us-h: {}
links:
  - [eu-h, eu-r1]
  - [eu-r1, us-r1]
  - [us-r1, us-h]
between:
  - {a: eu, b: [us-r1, us-h], delay: 40ms}
"""
    topo = load_text(text, "t.yaml")
    assert topo.between[0].a == ["eu-r1", "eu-h1", "eu-h2"]
    plan = make_plan(topo)
    assert {(i.src, i.dst): i.values.get("delay") for i in plan.impairments} == {
        ("eu-r1", "us-r1"): 0.04, ("us-r1", "eu-r1"): 0.04}
