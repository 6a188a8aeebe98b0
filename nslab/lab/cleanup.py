"""`nslab lab cleanup`: remove what crashed or orphaned labs left, and only that.

A namespace is removed only if it carries nslab's marker (the ifalias of its lo) and its lab has no
healthy state: the record is missing, unreadable, or belongs to an `up` whose process died.
A recorded-but-unmarked namespace is removed only when it holds nothing but lo (see apply.down).
"""

from __future__ import annotations

import os

from .. import faults, services
from ..kernel import bulk, netns
from ..names import is_lab_name
from . import apply, nodeview, system
from . import state as st


def _lab_dirs() -> list[str]:
    try:
        return sorted(e for e in os.listdir(nodeview.LABS_DIR) if is_lab_name(e)
                      and os.path.isdir(os.path.join(nodeview.LABS_DIR, e)))
    except FileNotFoundError:
        return []


def _healthy(lab: str) -> bool:
    """A lab is healthy when its record says up, or when an `up`/`down` of it holds its lock now
    (pids are not trusted: they get reused)."""
    rec = st.load(lab)
    if rec is None:
        return False
    return rec.status == "up" or st.busy(lab)


def marked_namespaces(only: str | None = None) -> dict[str, tuple[str, str]]:
    """Every namespace carrying nslab's marker (of lab ONLY, if given): name -> (lab, node).

    For one lab only the names `ONLY-*` are read: a namespace is acted on only when its name is the one its
    marker gives (`LAB-NODE`, see cleanup), so no other can be ONLY's, and reading the marker of each of the
    machine's namespaces (one netlink socket in each) would make `down` of an unknown lab slow."""
    out = {}
    names = netns.list_names()
    if only is not None:
        names = [n for n in names if n.startswith(f"{only}-")]
    for name in names:
        mark = st.parse_marker(bulk.lo_alias(name))
        # A marker naming no valid lab was not written by nslab: not ours, whatever it says.
        if mark is not None and is_lab_name(mark[0]) and (only is None or mark[0] == only):
            out[name] = mark
    return out


def orphan_labs(only: str | None = None) -> set[str]:
    """Labs (ONLY, if given and orphaned) with marked namespaces and no healthy record."""
    return {lab for lab, _ in marked_namespaces(only).values() if not _healthy(lab)}


def cleanup(only: str | None = None) -> int:
    removed = 0
    # Records of crashed `up`s: judged again under the lab's lock (an `up` holds it from start to end,
    # so a record still "creating" there is a crashed one); their own down handles what they made.
    for lab in st.names():
        if only is not None and lab != only:
            continue
        deleted = -1
        with st.locked(lab):
            rec = st.load(lab)
            if rec is None:
                continue
            if rec.netns and not any(netns.exists(n) for n in rec.netns.values()):
                st.remove(lab)  # a record whose namespaces were all removed by other means
            elif rec.status != "up":
                faults.forget(lab)
                system.stop_supervisor(lab)
                deleted, _ = apply.down(rec)
                nodeview.remove_lab_dir(lab)
        if deleted >= 0:
            services.remove_logs(lab)
            removed += deleted
    # Marked namespaces whose lab has no healthy record.
    marked = marked_namespaces(only)
    victims = [
        name for name, (lab, node) in marked.items()
        if (only is None or lab == only) and not _healthy(lab) and name == f"{lab}-{node}"
    ]
    for lab in {lab for name, (lab, node) in marked.items() if name in victims}:
        system.stop_supervisor(lab)
    removed += len(bulk.delete(victims))
    for lab in {lab for name, (lab, node) in marked.items() if name in victims}:
        services.remove_logs(lab)
        nodeview.remove_lab_dir(lab)
    # Lab directories (views, logs) of labs with no record, no supervisor and no up/down under way.
    for lab in [only] if only is not None else _lab_dirs():
        if st.load(lab) is None and not st.busy(lab) and os.path.isdir(nodeview.lab_dir(lab)):
            system.stop_supervisor(lab)
            nodeview.remove_lab_dir(lab)
    # Lock files of labs with no record that nobody holds: an `up` killed before its first namespace, its
    # record lost since, leaves nothing else (the steps above then find nothing to act on).
    for lab in st.names(".lock") if only is None else [only]:
        st.drop_stale_lock(lab)
    return removed
