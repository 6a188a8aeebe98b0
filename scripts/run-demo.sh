#!/usr/bin/env bash
# Sets up (scripts/bootstrap.sh) and runs the main job: the seed walkthrough, then a small lab.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/nslab demo
.venv/bin/nslab demo --lab
