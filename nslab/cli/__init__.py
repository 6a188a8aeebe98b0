"""The `nslab` command line: iproute2 grammar, one module per object (ns, link, addr, route, ...)."""
