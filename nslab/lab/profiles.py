"""Named impairment profiles: built-in ones (what a kind of network looks like) and a file's own `profiles:`.

A profile is a set of impairment values for ONE direction of a link (so a round trip sees its delay twice).
`expand` puts a profile's values under the ones written next to it (`{profile: wan, loss: 2%}` is wan with
2 % loss). The figures and where each comes from are in docs/impairments.md ("Profiles"). Pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

# One direction each. Sources (docs/impairments.md): ITU-T G.114 (2003) for propagation in optical fibre
# (5 us/km) and the one-way delay budget (150 ms), ITU-T Y.1541 (2011) for packet loss (IPLR 1e-3 in its
# classes 0-4); 3G from published HSPA measurement studies; lossy-wifi from the bursty losses of 802.11 links
# measured in Roofnet (Aguayo et al., SIGCOMM 2004). The exact values are representative picks, not quotes.
BUILTIN: dict[str, dict[str, str]] = {
    "lan": {"delay": "0.25ms", "jitter": "0.05ms"},
    "wan": {"delay": "15ms", "jitter": "3ms", "distribution": "normal", "loss": "0.1%"},
    "intercontinental": {"delay": "75ms", "jitter": "5ms", "distribution": "normal", "loss": "0.1%"},
    "3g": {"delay": "50ms", "jitter": "15ms", "distribution": "normal", "loss": "1%", "rate": "2mbit"},
    "lossy-wifi": {"delay": "3ms", "jitter": "2ms", "loss_model": "gemodel 2% 30% 50%"},
}
ABOUT = {
    "lan": "a switched LAN: 0.25 ms one way, 0.05 ms jitter",
    "wan": "a national WAN (~2000 km of fibre): 15 ms one way, 3 ms jitter (normal), 0.1 % loss",
    "intercontinental": "~15000 km of fibre: 75 ms one way, 5 ms jitter (normal), 0.1 % loss",
    "3g": "a 3G/HSPA mobile link: 50 ms one way, 15 ms jitter (normal), 1 % loss, 2 Mbit/s",
    "lossy-wifi": "a poor 802.11 link: 3 ms, 2 ms jitter, bursty loss (Gilbert-Elliott, ~3 % on average)",
}
PROFILE_NAME_RE = r"^[a-z][a-z0-9-]{0,31}$"


def expand(values: Mapping[str, str], user: Mapping[str, Mapping[str, str]] | None = None,
           name: Callable[[str], str] = lambda k: k) -> dict[str, str]:
    """VALUES with its `profile` replaced by that profile's values (the ones written next to it win).
    USER: the file's own profiles (they may shadow a built-in one). NAME: how an error names the field."""
    if "profile" not in values:
        return dict(values)
    which = str(values["profile"]).strip()
    known = {**BUILTIN, **(user or {})}
    if which not in known:
        close = next(iter(difflib.get_close_matches(which, list(known), n=1)), None)
        raise UsageError(f"unknown {name('profile')} {which!r}",
                         (f"did you mean {close!r}? " if close else "") + f"profiles: {', '.join(sorted(known))}")
    base = known[which]
    if "profile" in base:
        raise UsageError(f"{name('profile')} {which!r} names another profile itself",
                         "a profile lists impairment values only")
    return {**base, **{k: v for k, v in values.items() if k != "profile"}}


@dataclass(frozen=True)
class Resolved:
    """One direction's impairments as values: None not given; 0 none (nslab.faults merges them)."""

    loss: float | None
    duplicate: float | None
    rate: int | None
    netem: dict[str, Any]  # nslab.netem's canonical values

    @property
    def needs_netem(self) -> tuple[str, ...]:
        from ..netem import netem_wanted

        return tuple(netem_wanted(self.netem))


def resolve(values: Mapping[str, Any], user: Mapping[str, Mapping[str, str]] | None = None,
            name: Callable[[str], str] = lambda k: k, combination: bool = True) -> Resolved:
    """Impairment VALUES as written (a profile expanded) -> checked values; UsageError naming the field.
    COMBINATION: the rules of a combination too (jitter at most the delay, reorder needs a delay, ...)."""
    from .. import units
    from ..netem import Netem, check_values

    v = expand(values, user, name)
    loss = None if v.get("loss") is None else units.parse_percent(v["loss"], f"{name('loss')} percentage")
    dup = None if v.get("duplicate") is None else units.parse_percent(v["duplicate"],
                                                                       f"{name('duplicate')} percentage")
    r = v.get("rate")
    rate = None if r is None else (0 if str(r).strip() in ("0", "0bit") else
                                   units.parse_rate(r, units.SHAPING_RATES, name("rate")))
    netem = check_values(v, name)
    if combination:
        Netem.from_values(netem, loss, name)
    return Resolved(loss, dup, rate, netem)
