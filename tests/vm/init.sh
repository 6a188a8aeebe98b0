#!/bin/busybox sh
# nslab VM tier, stage 1: /init of the initramfs, run by busybox as PID 1.
# Loads the modules that reach the host's root over 9p, mounts it read-only, gives the guest its own
# writable layers (tmpfs and overlays, as listed in /ctl/mounts by the runner), then switch_root to stage 2
# (bash from the host's root, /run/vm/stage2). Nothing here writes to the host except the ctl share.
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "nslab-vm stage 1: $*" >/dev/console
    echo 125 >/ctl/status 2>/dev/null
    sync
    echo o >/proc/sysrq-trigger
    sleep 30
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo 1 >/proc/sys/kernel/sysrq
for m in $(cat /modules.order); do
    insmod "/modules/$m" || fail "insmod $m failed"
done

P9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$P9,cache=none" ctl /ctl || fail "cannot mount the ctl share"
mount -t 9p -o "$P9,ro,cache=loose" root /newroot || fail "cannot mount the host root"
mount -t tmpfs -o mode=0755 ovl /ovl

# Overlays first, at staging points: their lower layers are host paths that the tmpfs below may hide.
# Lines of /ctl/mounts: "overlay TARGET [EXTRA_LOWER]", "tmpfs TARGET", "share TARGET" (in mount order).
n=0
while read -r kind target extra; do
    [ "$kind" = overlay ] || continue
    n=$((n + 1))
    mkdir -p "/ovl/$n/u" "/ovl/$n/w" "/ovl/$n/m"
    lower="/newroot$target"
    [ -n "$extra" ] && lower="/newroot$extra:$lower"
    mount -t overlay -o "lowerdir=$lower,upperdir=/ovl/$n/u,workdir=/ovl/$n/w" overlay "/ovl/$n/m" \
        || fail "cannot overlay $target"
done </ctl/mounts

n=0
while read -r kind target extra; do
    case "$kind" in
    tmpfs)
        mount -t tmpfs -o mode=0755 tmpfs "/newroot$target" || fail "cannot mount a tmpfs on $target" ;;
    overlay)
        n=$((n + 1))
        mkdir -p "/newroot$target"
        mount --move "/ovl/$n/m" "/newroot$target" || fail "cannot move the overlay to $target" ;;
    share)
        mkdir -p "/newroot$target"
        mount -t 9p -o "$P9,cache=none" "$extra" "/newroot$target" || fail "cannot mount the share $target" ;;
    esac
done </ctl/mounts
chmod 1777 /newroot/tmp

mkdir -p /newroot/run/vm
mount --move /ctl /newroot/run/vm
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o mode=0620,ptmxmode=0666 devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 shm /newroot/dev/shm
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup
mount -t bpf bpf /newroot/sys/fs/bpf 2>/dev/null

# No udev here: the nodes whose opening loads a module (/dev/net/tun, /dev/fuse, ...) are made from
# modules.devname, as udev's static nodes would be.
devname="/newroot/lib/modules/$(uname -r)/modules.devname"
if [ -f "$devname" ]; then
    while read -r _mod node dev; do
        case "$_mod" in '#'*|'') continue ;; esac
        type=${dev%%[0-9]*}
        nums=${dev#?}
        case "$node" in */*) mkdir -p "/newroot/dev/${node%/*}" ;; esac
        [ -e "/newroot/dev/$node" ] || mknod "/newroot/dev/$node" "$type" "${nums%%:*}" "${nums##*:}"
    done <"$devname"
fi

ip link set lo up
hostname nslab-vm
exec switch_root /newroot /bin/bash /run/vm/stage2
