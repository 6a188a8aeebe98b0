"""`nslab lab cleanup`: remove what crashed or orphaned labs left, and only that.

A namespace is removed only if it carries nslab's marker (the ifalias of its lo) and its lab has no
healthy state: the record is missing, unreadable, or belongs to an `up` whose process died.
A recorded-but-unmarked namespace is removed only when it holds nothing but lo (see apply.down).
"""

from __future__ import annotations

from .. import faults, services
from ..kernel import bulk, netns
from . import apply
from . import state as st


def _healthy(lab: str) -> bool:
    rec = st.load(lab)
    if rec is None:
        return False
    return rec.status == "up" or st.pid_alive(rec.pid)


def marked_namespaces() -> dict[str, tuple[str, str]]:
    """Every namespace carrying nslab's marker: name -> (lab, node)."""
    out = {}
    for name in netns.list_names():
        mark = st.parse_marker(bulk.lo_alias(name))
        if mark is not None:
            out[name] = mark
    return out


def orphan_labs() -> set[str]:
    return {lab for lab, _ in marked_namespaces().values() if not _healthy(lab)}


def cleanup(only: str | None = None) -> int:
    removed = 0
    # Crashed `up`s with a record: their own down handles marked and unmarked leftovers.
    for lab in st.names():
        if only is not None and lab != only:
            continue
        rec = st.load(lab)
        if rec is not None and rec.netns and not any(netns.exists(n) for n in rec.netns.values()):
            st.remove(lab)  # a record whose namespaces were all removed by other means
            st.drop_lock(lab)
            continue
        if rec is not None and not _healthy(lab):
            with st.locked(lab):
                faults.forget(lab)
                deleted, _ = apply.down(rec)
            services.remove_logs(lab)
            removed += deleted
        elif rec is None:
            st.remove(lab)  # unreadable record
    # Marked namespaces whose lab has no healthy record.
    marked = marked_namespaces()
    victims = [
        name for name, (lab, node) in marked.items()
        if (only is None or lab == only) and not _healthy(lab) and name == f"{lab}-{node}"
    ]
    removed += len(bulk.delete(victims))
    for lab in {lab for name, (lab, node) in marked.items() if name in victims}:
        services.remove_logs(lab)
        st.drop_lock(lab)
    return removed
