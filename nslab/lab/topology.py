"""The topology spec's old import path: `from nslab.lab.topology import Topology, load_file, load_text` (and
every name it held) keeps working. It only re-exports: the data is in `model`, the rules in `checks`, the
checked builder `Topology` in `spec`, the YAML reader in `loader`."""

from ..names import (
    IMPLICIT_SWITCH_RE,
    LAB_NAME_MAX,
    LAB_NAME_RE,
    NODE_NAME_MAX,
    NODE_NAME_RE,
    check_ifname,
    check_lab_name,
    check_node_name,
    check_utf8,
    natural_key,
)
from .checks import Checker, parse_iface, parse_net
from .loader import (
    CHECK_KEYS,
    ENDPOINT_KEYS,
    IMPAIR_KEYS,
    LINK_KEYS,
    MAX_DEPTH,
    MAX_EXPANDED,
    MAX_FILE_BYTES,
    NODE_KEYS,
    POOL_KEYS,
    PORT_CHECK_KEYS,
    TOP_KEYS,
    json_schema,
    load_file,
    load_text,
    read_file,
)
from .model import (
    BRIDGE,
    CHECK_KINDS,
    CHECK_RETRIES,
    DEFAULT_POOLS,
    KINDS,
    MTU_MAX,
    MTU_MIN,
    ROUTING,
    Check,
    Endpoint,
    IPIface,
    IPNet,
    Link,
    Node,
    Pools,
    TopologyData,
)
from .spec import Topology

__all__ = [
    "BRIDGE", "CHECK_KEYS", "CHECK_KINDS", "CHECK_RETRIES", "DEFAULT_POOLS", "ENDPOINT_KEYS", "IMPAIR_KEYS",
    "IMPLICIT_SWITCH_RE", "KINDS", "LAB_NAME_MAX", "LAB_NAME_RE", "LINK_KEYS", "MAX_DEPTH", "MAX_EXPANDED",
    "MAX_FILE_BYTES", "MTU_MAX", "MTU_MIN", "NODE_KEYS", "NODE_NAME_MAX", "NODE_NAME_RE", "POOL_KEYS",
    "PORT_CHECK_KEYS", "ROUTING", "TOP_KEYS", "Check", "Checker", "Endpoint", "IPIface", "IPNet", "Link", "Node",
    "Pools", "Topology", "TopologyData", "check_ifname", "check_lab_name", "check_node_name", "check_utf8",
    "json_schema", "load_file", "load_text", "natural_key", "parse_iface", "parse_net", "read_file",
]
