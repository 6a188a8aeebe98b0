"""The one door to the kernel: every syscall and netlink request nslab makes lives below this package.

Everything above it (planning, formatting, the CLI) works on plain data from `nslab.model`.
"""
