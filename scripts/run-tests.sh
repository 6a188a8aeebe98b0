#!/usr/bin/env bash
# Sets up (scripts/bootstrap.sh --dev) and runs every check: ruff, mypy, then the test suite, with the VM
# tier (docs/vm-tier.md): the tests needing kernel features this host lacks, and a slice of the suite, in
# one QEMU guest on Debian's stock kernel, after the rest.
# Kernel tests need root; as another user they are skipped with the reason printed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --dev
.venv/bin/ruff check nslab tests bench examples
.venv/bin/mypy
exec .venv/bin/python -m pytest -q -rs --nslab-vm=full "$@"
