# Sourced by boot and lan-host: Debian's kernel, unpacked once, and an
# initramfs with busybox, iproute2, tc, dnsmasq and netrt-hook (with their
# libraries), the modules, init, lib.sh and the scenario.
#
#   build_initramfs NAME SCENARIO [EXTRA-MODULE...]   sets $vmlinuz and $initrd
#
# Expects $here (this folder), $work, $hook and $fault_hook.

build_initramfs() {
    local name=$1 scenario=$2
    shift 2
    # The kernel: the package linux-image-amd64 depends on, unpacked once.
    if [ ! -d "$work/kernel/boot" ]; then
        local package
        package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        [ -n "$package" ] || { echo "boot: cannot find Debian's kernel package" >&2; exit 1; }
        rm -rf "$work/download" "$work/kernel.tmp" && mkdir -p "$work/download"
        (cd "$work/download" && apt-get download "$package" >/dev/null 2>&1) \
            || { echo "boot: apt-get download $package failed" >&2; exit 1; }
        dpkg-deb -x "$work"/download/*.deb "$work/kernel.tmp"
        rm -rf "$work/download" && mv "$work/kernel.tmp" "$work/kernel"
    fi
    vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-*)
    local modules
    modules=$(ls -d "$work"/kernel/lib/modules/*/kernel)

    local root=$work/root-$name
    rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,opt/bin,modules,lib64}
    cp /bin/busybox "$root/bin/busybox"
    cp /usr/bin/ip /usr/sbin/bridge /usr/sbin/tc /usr/sbin/dnsmasq "$hook" "$root/opt/bin/"
    local binaries=(/usr/bin/ip /usr/sbin/bridge /usr/sbin/tc /usr/sbin/dnsmasq "$hook")
    if [[ $scenario == crash-vlan ]]; then
        [[ -x $fault_hook ]] || { echo "boot: $scenario needs the fault-injection build $fault_hook (integration/run builds it)" >&2; exit 1; }
        cp "$fault_hook" "$root/opt/bin/netrt-hook-fault"
        binaries+=("$fault_hook")
    fi
    local binary library module
    for binary in "${binaries[@]}"; do
        for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$library")" && cp -L "$library" "$root$library"
        done
    done
    for module in net/llc/llc net/802/stp net/802/garp net/802/mrp net/8021q/8021q net/bridge/bridge \
        drivers/net/veth drivers/net/macvlan drivers/net/ifb net/sched/sch_tbf net/sched/sch_ingress \
        net/sched/cls_u32 net/sched/act_mirred "$@"; do
        cp "$modules/$module.ko" "$root/modules/"
    done
    # dnsmasq (the DHCP scenario's server) looks its user up.
    mkdir -p "$root/etc" && echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd" && echo 'root:x:0:' > "$root/etc/group"
    cp "$here/init" "$root/init" && cp "$here/lib.sh" "$here/$scenario.sh" "$root/opt/"
    echo "$scenario" > "$root/opt/scenario"
    chmod 755 "$root/init"
    initrd=$work/initrd-$name.gz
    (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$initrd"
}
