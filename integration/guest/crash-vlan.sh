# A macvlan on <parent>.<vlan> with a limit, set up by the fault-injection
# build killed with SIGKILL at every setup point and at every teardown
# point in turn. After each kill the hook must have died by the signal and
# left its record; then poststop and gc by the release build, and the
# guest must be as before. A run that passes the last point ends the loop.
. /opt/lib.sh
FAULT=/opt/bin/netrt-hook-fault
$IP link add sw type bridge && $IP link set sw up
$IP link add lan0 type veth peer name sw0 && $IP link set sw0 master sw up && $IP link set lan0 up
tagged_peer 50 10.0.0.5/24
ANNOTATIONS='{"net.parent":"lan0","net.vlan":"50","net.ip":"10.0.0.21/24","net.gateway":"10.0.0.5","net.egress":"5mbit","net.ingress":"7mbit"}'

state() { # ID STATUS [PID]
    if [ -n "$3" ]; then pid=",\"pid\":$3"; else pid=""; fi
    echo "{\"ociVersion\":\"1.0.2\",\"id\":\"$1\",\"status\":\"$2\"$pid,\"bundle\":\"/b/$1\"}"
}

recorded() { [ -e /run/netrt/containers/$1.json ] || [ -e /run/netrt/containers/$1.partial ]; }

# clean_up ID POINT BEFORE: poststop and gc by the release build; the guest
# must be as BEFORE.
clean_up() {
    state $1 stopped | $HOOK poststop >/tmp/$1.poststop 2>&1 || echo "CHECK poststop-after-$2 FAIL $(cat /tmp/$1.poststop)"
    $HOOK gc >/dev/null 2>&1 || echo "CHECK gc-after-$2 FAIL"
    check clean-after-$2 same_as "$3"
}

before=$(settled_snapshot)
mkdir -p /b/k && echo "{\"ociVersion\":\"1.0.2\",\"annotations\":$ANNOTATIONS}" > /b/k/config.json
n=0
while [ $n -lt 60 ]; do
    unshare -n sleep 600 & pid=$!
    sleep 0.2
    state k creating $pid | NETRT_FAULT_KILL=setup:$n $FAULT createRuntime >/tmp/k.setup 2>&1
    rc=$?
    if [ $rc = 0 ]; then
        kill $pid; wait $pid 2>/dev/null
        clean_up k clean-run "$before"
        break
    fi
    if [ $rc = 137 ]; then echo "CHECK killed-at-setup-$n ok"; else echo "CHECK killed-at-setup-$n FAIL rc $rc: $(cat /tmp/k.setup)"; fi
    check record-left-at-setup-$n recorded k
    kill $pid; wait $pid 2>/dev/null
    clean_up k setup-$n "$before"
    n=$((n + 1))
done
if [ $n -ge 8 ]; then echo "CHECK setup-kill-points ok"; else echo "CHECK setup-kill-points FAIL only $n"; fi
echo "setup kill points: $n"

t=0
while [ $t -lt 20 ]; do
    unshare -n sleep 600 & pid=$!
    sleep 0.2
    state k creating $pid | $FAULT createRuntime >/tmp/k.setup 2>&1 || echo "CHECK setup-before-teardown-$t FAIL $(cat /tmp/k.setup)"
    objects=$(grep -o '"object"' /run/netrt/containers/k.json | wc -l)
    kill $pid; wait $pid 2>/dev/null
    state k stopped | NETRT_FAULT_KILL=teardown:$t $FAULT poststop >/tmp/k.teardown 2>&1
    rc=$?
    if [ $rc = 137 ]; then echo "CHECK killed-at-teardown-$t ok"; else echo "CHECK killed-at-teardown-$t FAIL rc $rc: $(cat /tmp/k.teardown)"; fi
    check record-left-at-teardown-$t recorded k
    clean_up k teardown-$t "$before"
    [ $t -ge $objects ] && break
    t=$((t + 1))
done
if [ $t -ge 4 ]; then echo "CHECK teardown-kill-points ok"; else echo "CHECK teardown-kill-points FAIL only $t"; fi
echo "teardown kill points: $((t + 1))"
