"""netem impairments: what a direction of a link asks for (validated, plain data).

One place for the rules of the netem keys, shared by the topology file (`impair:`), `nslab lab impair` and
`Lab.impair`: `check_values` turns the values as written into canonical ones (raising UsageError naming the
field), `Netem.from_values` builds the qdisc's options; `nslab.kernel.netem.options` encodes them as the
payload of TCA_OPTIONS exactly as iproute2's `tc ... netem` does. The delay tables are iproute2's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from . import units
from .errors import FeatureMissing, UsageError

# Keys an impairment may carry (besides loss, duplicate, rate, which work without netem), in help order.
NETEM_KEYS = ("delay", "jitter", "delay_correlation", "distribution", "loss_correlation", "loss_model",
              "reorder", "reorder_correlation", "gap", "corrupt", "corrupt_correlation", "limit")
DISTRIBUTIONS = ("uniform", "normal", "pareto", "paretonormal")
MAX_DELAY = 10.0  # s: beyond it a link is broken, not slow (G.114's planning limit is 0.4 s one way)
MAX_LIMIT = 1_000_000  # packets netem may hold
DEFAULT_LIMIT = 1000  # tc's default
# Where iproute2 installs its distribution tables (tc's TC_LIB_DIR, then the distributions' LIBDIRs).
TC_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu/tc", "/usr/lib/aarch64-linux-gnu/tc", "/usr/lib64/tc", "/usr/lib/tc",
               "/lib/tc", "/usr/share/tc")


# ---- validation of what is written (pure) -----------------------------------------------------------------
def _pct(value: Any, what: str) -> float:
    return units.parse_percent(value, what)


def parse_loss_model(value: Any, what: str = "loss_model") -> str:
    """'gemodel P [R [1-H [1-K]]]' or 'state P13 [P31 [P32 [P23 [P14]]]]' (tc-netem(8)'s order) -> canonical."""
    words = str(value).replace(",", " ").split()
    hint = ("write 'gemodel P [R [1-H [1-K]]]' (Gilbert-Elliott) or 'state P13 [P31 [P32 [P23 [P14]]]]' (4-state "
            "Markov), percentages as in tc-netem(8), e.g. 'gemodel 1% 10% 70% 0.1%'")
    if not words or words[0] not in ("gemodel", "state") or len(words) < 2 or \
            len(words) > (5 if words[0] == "gemodel" else 6):
        raise UsageError(f"invalid {what} {value!r}", hint)
    nums = [_pct(w, f"{what} probability") for w in words[1:]]
    if nums[0] == 0:
        raise UsageError(f"invalid {what} {value!r}: the first probability is 0, so nothing is ever lost",
                         "give it above 0%, or remove the loss model")
    return " ".join([words[0], *(f"{n:g}%" for n in nums)])


def check_values(values: Mapping[str, Any], name: Callable[[str], str] = lambda k: k) -> dict[str, Any]:
    """The netem keys of VALUES (as written: text or numbers) -> canonical values: seconds, percents, ints,
    names. Errors name the field through NAME (a file path or a CLI option). Keys with a zero value are kept
    (0 removes an impairment set before); cross-field rules are `Netem.from_values`'."""
    out: dict[str, Any] = {}
    for key in NETEM_KEYS:
        if key not in values or values[key] is None:
            continue
        v = values[key]
        what = name(key)
        if key in ("delay", "jitter"):
            secs = units.parse_time(v, what, 0.0, MAX_DELAY)
            if 0 < secs < 1e-6:
                raise UsageError(f"invalid {what} {v!r}: below netem's resolution", "give 0, or at least 1us")
            out[key] = round(secs, 9)
        elif key == "distribution":
            text = str(v).strip()
            if text not in (*DISTRIBUTIONS, "0"):
                raise UsageError(f"invalid {what} {text!r}", f"choose one of: {', '.join(DISTRIBUTIONS)}")
            out[key] = "" if text in ("uniform", "0") else text  # uniform is netem's own: no table
        elif key == "loss_model":
            out[key] = "" if str(v).strip() in ("", "0", "none") else parse_loss_model(v, what)
        elif key in ("gap", "limit"):
            text = str(v).strip()
            hi = 1_000_000 if key == "gap" else MAX_LIMIT
            if isinstance(v, bool) or not text.isascii() or not text.isdigit() or len(text) > 7 or int(text) > hi:
                raise UsageError(f"invalid {what} {v!r}", f"give a whole number of packets from "
                                 f"{0 if key == 'gap' else 1} to {hi}")
            if key == "limit" and int(text) == 0:
                raise UsageError(f"invalid {what} {v!r}: netem would hold no packet", "give 1 or more packets")
            out[key] = int(text)
        else:
            out[key] = _pct(v, f"{what} percentage")
    return out


NETEM_NAMES = {"delay": "delay", "jitter": "jitter", "reorder": "reorder", "corrupt": "corrupt",
               "loss_correlation": "loss correlation", "loss_model": "loss model"}  # what needs netem, named


def netem_wanted(values: Mapping[str, Any]) -> list[str]:
    """The impairments among canonical VALUES (check_values') that need netem (set to something other than 0)."""
    return [NETEM_NAMES.get(k, k) for k in NETEM_KEYS
            if values.get(k) not in (None, 0, 0.0, "") and k in NETEM_NAMES]


# ---- the options of one netem qdisc -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Netem:
    """One netem qdisc's options (times in seconds, probabilities in percent). Defaults: nothing."""

    delay: float = 0.0
    jitter: float = 0.0
    delay_correlation: float = 0.0
    distribution: str = "uniform"
    loss: float = 0.0  # netem's own random loss (nslab uses it only with a correlation)
    loss_correlation: float = 0.0
    loss_model: str = ""  # canonical 'gemodel ...' / 'state ...'
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_correlation: float = 0.0
    gap: int = 0
    corrupt: float = 0.0
    corrupt_correlation: float = 0.0
    rate: int = 0  # bit/s, netem's own rate (nslab composes a tbf instead; kept for the encoder)
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_values(cls, values: Mapping[str, Any], loss: float | None = None,
                    name: Callable[[str], str] = lambda k: k) -> Netem | None:
        """The qdisc for canonical VALUES (check_values' output) plus the direction's random LOSS when netem
        must do it (a correlation or a model is given); None when nothing needs netem. Raises UsageError on
        combinations netem cannot do or would do surprisingly, naming the field."""
        v = {k: x for k, x in values.items() if x not in (None, 0, 0.0, "")}
        if not v:
            return None
        if set(v) == {"limit"}:
            return None  # a queue length alone impairs nothing
        delay, jitter = v.get("delay", 0.0), v.get("jitter", 0.0)
        if jitter and not delay:
            raise UsageError(f"{name('jitter')} without {name('delay')}: netem varies a delay around its value",
                             f"give {name('delay')} too (jitter at most the delay)")
        if jitter > delay:
            raise UsageError(f"{name('jitter')} {_ms(jitter)} is larger than {name('delay')} {_ms(delay)}: netem "
                             "would clip the negative delays to 0 (skewing the delay it gives)",
                             f"give a jitter of at most the delay ({_ms(delay)})")
        for key in ("delay_correlation", "distribution"):
            if key in v and not jitter:
                raise UsageError(f"{name(key)} needs {name('jitter')}: it shapes how the delay varies",
                                 f"give {name('jitter')} too, or remove {name(key)}")
        if "reorder" in v and not delay:
            raise UsageError(f"{name('reorder')} needs {name('delay')}: netem reorders by sending some packets "
                             "at once while the others wait the delay", f"give {name('delay')} too")
        for key, base in (("reorder_correlation", "reorder"), ("gap", "reorder"), ("corrupt_correlation", "corrupt"),
                          ("loss_correlation", "loss")):
            if key in v and not (v.get(base) if base != "loss" else loss):
                raise UsageError(f"{name(key)} needs {name(base)}", f"give {name(base)} too, or remove {name(key)}")
        if v.get("loss_model") and loss:
            raise UsageError(f"{name('loss')} and {name('loss_model')} both set: the model decides the losses",
                             f"remove {name('loss')} (or the model)")
        netem_loss = (loss or 0.0) if "loss_correlation" in v else 0.0
        return cls(delay=delay, jitter=jitter, delay_correlation=v.get("delay_correlation", 0.0),
                   distribution=v.get("distribution", "uniform"), loss=netem_loss,
                   loss_correlation=v.get("loss_correlation", 0.0), loss_model=v.get("loss_model", ""),
                   reorder=v.get("reorder", 0.0), reorder_correlation=v.get("reorder_correlation", 0.0),
                   gap=v.get("gap", 0), corrupt=v.get("corrupt", 0.0),
                   corrupt_correlation=v.get("corrupt_correlation", 0.0), limit=v.get("limit", DEFAULT_LIMIT))

    def to_json(self) -> dict[str, Any]:
        """The fields that differ from the defaults."""
        default = Netem()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Netem:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def tc_args(self) -> list[str]:
        """The same qdisc as `tc qdisc add ... netem ARGS` words (for people, and for tests against tc)."""
        out: list[str] = []
        if self.limit != DEFAULT_LIMIT:
            out += ["limit", str(self.limit)]
        if self.delay:
            out += ["delay", _us(self.delay)]
            if self.jitter:
                out.append(_us(self.jitter))
                if self.delay_correlation:
                    out.append(f"{self.delay_correlation:g}%")
            if self.distribution != "uniform":
                out += ["distribution", self.distribution]
        if self.loss_model:
            out += ["loss", *self.loss_model.split()]
        elif self.loss:
            out += ["loss", f"{self.loss:g}%"] + ([f"{self.loss_correlation:g}%"] if self.loss_correlation else [])
        if self.duplicate:
            out += ["duplicate", f"{self.duplicate:g}%"]
        if self.corrupt:
            out += ["corrupt", f"{self.corrupt:g}%"] + ([f"{self.corrupt_correlation:g}%"]
                                                        if self.corrupt_correlation else [])
        if self.reorder:
            out += ["reorder", f"{self.reorder:g}%"] + ([f"{self.reorder_correlation:g}%"]
                                                        if self.reorder_correlation else [])
            if self.gap:
                out += ["gap", str(self.gap)]
        if self.rate:
            out += ["rate", f"{self.rate}bit"]
        return out

    def text(self) -> str:
        return " ".join(self.tc_args())


def _us(secs: float) -> str:
    us = round(secs * 1e6)
    return f"{us // 1000}ms" if us % 1000 == 0 else f"{us}us"


def _ms(secs: float) -> str:
    return f"{secs * 1000:g}ms"


# ---- delay distribution tables (iproute2's files) ---------------------------------------------------------------
def parse_table(text: str, source: str) -> list[int]:
    """A .dist file as tc reads it: '#' lines skipped, then whitespace-separated integers (s16)."""
    out: list[int] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        for word in line.split():
            try:
                n = int(word, 0)
            except ValueError:
                raise FeatureMissing(f"{source}: not a netem distribution table ({word!r})",
                                     "reinstall iproute2 (apt-get install --reinstall iproute2)") from None
            if not -32768 <= n <= 32767:
                raise FeatureMissing(f"{source}: value {n} outside a table's range", "reinstall iproute2")
            out.append(n)
    if not out or len(out) > 16384:
        raise FeatureMissing(f"{source}: {len(out)} values; a netem table holds 1 to 16384",
                             "reinstall iproute2")
    return out


def table_path(name: str, dirs: Sequence[str] | None = None) -> str:
    """Where iproute2's NAME.dist is (TC_LIB_DIR first, as tc looks); FeatureMissing when nowhere."""
    env = os.environ.get("TC_LIB_DIR")
    search = list(dirs) if dirs is not None else [*([env] if env else []), *TC_LIB_DIRS]
    for d in search:
        path = os.path.join(d, f"{name}.dist")
        if os.path.isfile(path):
            return path
    raise FeatureMissing(f"the {name} delay distribution needs iproute2's table {name}.dist, found in none of "
                         f"{', '.join(search)}; nothing was applied",
                         "install iproute2 (apt-get install iproute2), or set TC_LIB_DIR to the directory "
                         "holding it, or use distribution: uniform")


def load_table(name: str) -> list[int] | None:
    """The table of distribution NAME (None for uniform: the kernel's own)."""
    if name == "uniform":
        return None
    path = table_path(name)
    with open(path) as f:
        return parse_table(f.read(), path)
