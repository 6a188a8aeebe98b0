"""nslab: Linux network namespaces, virtual interfaces, and labs of them, from Python and the CLI.

    from nslab import Namespace, Lab
    with Namespace.create("ns1") as ns:
        ns.link("lo").up()
        ns.run(["ping", "-c1", "127.0.0.1"])
"""

from .errors import NslabError, UsageError
from .lab.lab import Lab
from .namespace import LinkHandle, Namespace

__version__ = "0.1.0"
__all__ = ["Lab", "LinkHandle", "Namespace", "NslabError", "UsageError", "__version__"]
