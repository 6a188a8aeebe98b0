"""The VM tier: tests that need kernel features this host lacks run in a QEMU guest on Debian's stock kernel.

runner.py boots the guest (docs/vm-tier.md says why it is our own and not virtme-ng), features.py probes the
kernel, tier.py is the pytest side (markers, one guest session for all selected tests, the report).
"""
