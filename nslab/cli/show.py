"""The iproute2-shaped text views moved to `nslab.show` (the CLI and nslab.testing share them); this name stays."""

from ..show import addr_line, link_lines, route_line

__all__ = ["addr_line", "link_lines", "route_line"]
