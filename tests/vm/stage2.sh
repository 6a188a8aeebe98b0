#!/bin/bash
# nslab VM tier, stage 2: PID 1 of the guest (bash from the host's root, read-only), after stage 1.
# Runs the command of /run/vm/argv in the foreground (a background job would ignore SIGINT) in a minimal
# environment (/run/vm/env), stdout and stderr on the virtio ports "out" and "err", writes its exit status
# to /run/vm/status and powers the guest off.
read -r up _ </proc/uptime
echo "$up" >/run/vm/booted
declare -A port
for p in /sys/class/virtio-ports/*; do
    port[$(<"$p/name")]=/dev/${p##*/}
done
mapfile -d '' -t cmd </run/vm/argv
mapfile -d '' -t envs </run/vm/env
cd "$(</run/vm/cwd)" || { echo 125 >/run/vm/status; echo o >/proc/sysrq-trigger; }
env -i "${envs[@]}" "${cmd[@]}" </dev/null >"${port[out]:-/dev/console}" 2>"${port[err]:-/dev/console}"
echo $? >/run/vm/status
sync
echo o >/proc/sysrq-trigger
sleep 30
