# Helpers for guest scenarios. iproute2 is called by absolute path: busybox
# sh runs its own applets first, and its ip knows no VLANs.
IP=/opt/bin/ip
BRIDGE=/opt/bin/bridge
HOOK=/opt/bin/netrt-hook

check() { # NAME COMMAND...: passes if the command succeeds
    name=$1; shift
    if out=$("$@" 2>&1); then echo "CHECK $name ok"; else echo "CHECK $name FAIL $(echo "$out" | tr '\n' ' ')"; fi
}

check_not() { # NAME COMMAND...: passes if the command fails
    name=$1; shift
    if out=$("$@" 2>&1); then echo "CHECK $name FAIL succeeded: $(echo "$out" | tr '\n' ' ')"; else echo "CHECK $name ok"; fi
}

# start ID ANNOTATIONS-JSON: a "container" (a process in a new network
# namespace) set up by netrt-hook as a runtime would; prints its pid.
start() {
    id=$1 annotations=$2
    mkdir -p /b/$id
    echo "{\"ociVersion\":\"1.0.2\",\"annotations\":$annotations}" > /b/$id/config.json
    unshare -n sleep 600 &
    pid=$!
    sleep 0.2
    echo "{\"ociVersion\":\"1.0.2\",\"id\":\"$id\",\"status\":\"creating\",\"pid\":$pid,\"bundle\":\"/b/$id\"}" \
        | $HOOK createRuntime >/tmp/$id.setup 2>&1 || { echo "CHECK setup-$id FAIL $(cat /tmp/$id.setup)"; }
    echo $pid > /tmp/$id.pid
}

# stop ID: the process ends, then poststop runs, as a runtime does it.
stop() {
    id=$1
    pid=$(cat /tmp/$id.pid)
    kill $pid; wait $pid 2>/dev/null
    echo "{\"ociVersion\":\"1.0.2\",\"id\":\"$id\",\"status\":\"stopped\",\"bundle\":\"/b/$id\"}" \
        | $HOOK poststop || echo "CHECK teardown-$id FAIL"
}

inside() { # ID COMMAND...: run in the container's network namespace
    id=$1; shift
    nsenter -t $(cat /tmp/$id.pid) -n "$@"
}

# veth_to NAMESPACE HOSTEND: a namespace with eth0 whose peer HOSTEND is here.
veth_to() {
    $IP netns add $1
    $IP link add $2 type veth peer name eth0 netns $1
    $IP -n $1 link set lo up
    $IP -n $1 link set eth0 up
    $IP link set $2 up
}

gone() { # LINK: teardown has returned, so the link must be gone already
    ! $IP link show dev $1 >/dev/null 2>&1
}

# tagged_peer VLAN ADDRESS/PREFIX: a namespace pVLAN on the switch sw (a
# plain bridge carrying tagged frames), its eth0.VLAN with that address.
tagged_peer() {
    veth_to p$1 p${1}h
    $IP link set p${1}h master sw
    $IP -n p$1 link add link eth0 name eth0.$1 type vlan id $1
    $IP -n p$1 addr add $2 dev eth0.$1
    $IP -n p$1 link set eth0.$1 up
}

# Everything netrt could leave in the guest's root namespace: links,
# addresses, routes, qdiscs, classes and filters, the mounts and files
# under /run/netrt (the lock aside).
snapshot() {
    $IP -o link show | sed 's/^[0-9]*: //'
    $IP -o addr show | sed 's/^[0-9]*: //'
    $IP route show table all
    $IP -6 route show table all
    /opt/bin/tc qdisc show
    for link in $($IP -o link show | cut -d: -f2 | cut -d@ -f1); do
        for parent in "" ingress egress; do
            /opt/bin/tc filter show dev $link $parent 2>/dev/null | sed "s/^/filter $link ${parent:-root}: /"
        done
        /opt/bin/tc class show dev $link | sort | sed "s/^/$link: /"
    done
    grep ' /run/netrt' /proc/self/mountinfo | cut -d' ' -f5
    # The lock, and the node's liveness lease, outlive containers by design.
    find /run/netrt -mindepth 1 ! -type d ! -name lock ! -name liveness | sort
}

# The snapshot once it holds still (the same twice, half a second apart):
# a link made or emptied a moment ago changes state by itself a little later.
settled_snapshot() {
    last=$(snapshot)
    for try in 1 2 3 4 5 6 7 8 9 10; do
        sleep 0.5
        now=$(snapshot)
        [ "$now" = "$last" ] && break
        last=$now
    done
    echo "$last"
}

same_as() { # BEFORE: passes if the snapshot (settled, if need be) equals BEFORE; else shows the difference
    [ "$(snapshot)" = "$1" ] && return 0
    settled_snapshot > /tmp/now
    echo "$1" > /tmp/before
    diff /tmp/before /tmp/now
}
