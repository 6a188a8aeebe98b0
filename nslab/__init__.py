"""nslab: Linux network namespaces, virtual interfaces, and labs of them, from Python and the CLI.

    from nslab import Namespace, Lab
    with Namespace.create("ns1") as ns:
        ns.link("lo").up()
        ns.run(["ping", "-c1", "127.0.0.1"])
"""

from __future__ import annotations

# Nothing is imported here (not even typing): the console script imports this package before nslab's own
# handlers exist, so the less it does, the smaller the moment where a Ctrl-C would end in a traceback.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .errors import NslabError, UsageError
    from .lab.lab import Lab
    from .namespace import LinkHandle, Namespace

__version__ = "0.1.0"
__all__ = ["Lab", "LinkHandle", "Namespace", "NslabError", "UsageError", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use: a child that only needs the kernel door (run_full) should not pay for labs.
    if name in ("Namespace", "LinkHandle"):
        from . import namespace

        return getattr(namespace, name)
    if name in ("NslabError", "UsageError"):
        from . import errors

        return getattr(errors, name)
    if name == "Lab":
        from .lab.lab import Lab

        return Lab
    raise AttributeError(f"module 'nslab' has no attribute {name!r}")
