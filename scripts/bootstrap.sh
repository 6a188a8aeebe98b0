#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for nslab: system tools through apt (when root),
# a virtual environment in .venv, and nslab in it (with the test tools when given --dev).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

# Runtime: iproute2 (ip netns exec semantics for run_full), iputils-ping (the lab demo), nftables
# (partitions and loss), graphviz (lab graph --format svg), libpcap (capture filters), python3-venv
# (Debian's python3 lacks venv).
# Tests also use oracles nobody here wrote: net-tools ifconfig, tshark, iperf3, etcd; zsh and fish check the
# completions nslab generates.
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v nft >/dev/null || need+=(nftables)
command -v dot >/dev/null || need+=(graphviz)
ldconfig -p 2>/dev/null | grep -q 'libpcap\.so\.0\.8' || need+=(libpcap0.8)  # capture filters
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "$dev" = 1 ]; then
  command -v ifconfig >/dev/null || need+=(net-tools)
  command -v tshark >/dev/null || need+=(tshark)
  command -v iperf3 >/dev/null || need+=(iperf3)
  command -v zsh >/dev/null || need+=(zsh)  # the generated completions' syntax is checked by the shells
  command -v fish >/dev/null || need+=(fish)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${need[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# The VM tier (docs/vm-tier.md): QEMU, a static busybox for the guest's initramfs, kmod (depmod for the
# guest kernel's modules; modprobe in the guest). Root only, like the tier; the kernel is not installed
# (its package would pull initramfs-tools and udev into the host) but unpacked into .cache/vm below.
vm_need=()
if [ "$dev" = 1 ]; then
  command -v qemu-system-x86_64 >/dev/null || vm_need+=(qemu-system-x86)
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || vm_need+=(busybox-static)
  PATH="$PATH:/usr/sbin:/sbin" command -v depmod >/dev/null || vm_need+=(kmod)
fi
if [ ${#vm_need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${vm_need[*]} for the VM tier with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${vm_need[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${vm_need[@]}" >/dev/null; }
  else
    echo "bootstrap: the VM tier needs root and ${vm_need[*]}; its tests will skip with the reason" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=23" >/dev/null
# The library's dependencies are ranges (pyproject.toml); the test environment is pinned (constraints.txt).
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e .
fi
if [ "$dev" = 1 ] && ! command -v etcd >/dev/null && [ ! -x .cache/etcd/usr/bin/etcd ]; then
  # A real distributed program nobody here wrote, for the partition tests: Debian's etcd 3.4,
  # unpacked into .cache (not installed, so no etcd service starts on this machine).
  echo "bootstrap: fetching etcd-server and etcd-client into .cache/etcd"
  mkdir -p .cache/debs .cache/etcd
  if ! (cd .cache/debs && apt-get download etcd-server etcd-client >/dev/null 2>&1); then
    apt-get update -qq  # package lists may be missing on a fresh machine
    (cd .cache/debs && apt-get download etcd-server etcd-client >/dev/null 2>&1)
  fi
  for deb in .cache/debs/etcd-*.deb; do dpkg -x "$deb" .cache/etcd; done
fi
if [ "$dev" = 1 ] && [ "$(id -u)" = 0 ]; then
  # Debian's current kernel for the VM tier, downloaded and unpacked into .cache/vm (once per release).
  kver=$(.venv/bin/python tests/vm/runner.py --prepare 2>/dev/null) ||
    echo "bootstrap: could not prepare the VM tier's kernel (scripts/vm-run --prepare says why)" >&2
  [ -n "${kver:-}" ] && echo "bootstrap: VM tier kernel $kver in .cache/vm"
fi
echo "bootstrap: ready (.venv/bin/nslab)"
