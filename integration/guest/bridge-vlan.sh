# A bridge attachment as an untagged access port of VLAN 50 on a bridge
# with VLAN filtering: reaches VLAN 50, not VLAN 60, and leaves nothing.
. /opt/lib.sh
$IP link add vbr type bridge vlan_filtering 1 && $IP link set vbr up
for vlan in 50 60; do
    veth_to q$vlan q${vlan}h
    $IP link set q${vlan}h master vbr
    $BRIDGE vlan add dev q${vlan}h vid $vlan pvid untagged
    $BRIDGE vlan del dev q${vlan}h vid 1
    $IP -n q$vlan addr add 10.1.0.$((vlan / 10))/24 dev eth0
done
# q50 is 10.1.0.5, q60 is 10.1.0.6.
before=$(settled_snapshot)

start c1 '{"net.bridge":"vbr","net.vlan":"50","net.ip":"10.1.0.11/24","net.ingress":"5mbit"}'
port=$(cat /run/netrt/containers/c1.json | grep -o 'nrtv[0-9a-f]*' | head -n 1)
check port-found test -n "$port"
check port-pvid-50-untagged sh -c "$BRIDGE vlan show dev $port | grep -q '50 PVID Egress Untagged'"
check port-left-vlan-1 sh -c "! $BRIDGE vlan show dev $port | grep -qw 1"
check reaches-vlan-50 inside c1 ping -c 2 -W 2 10.1.0.5
check_not no-reach-vlan-60 inside c1 ping -c 2 -W 2 10.1.0.6
stop c1
check port-gone gone $port
check no-records sh -c "[ -z \"\$(ls /run/netrt/containers)\" ]"
check nothing-left same_as "$before"

# The same on a bridge without VLAN filtering is refused, and changes nothing.
$IP link add plain type bridge && $IP link set plain up
before=$(settled_snapshot)
mkdir -p /b/c2 && echo '{"annotations":{"net.bridge":"plain","net.vlan":"50"}}' > /b/c2/config.json
unshare -n sleep 600 & pid=$!; sleep 0.2
out=$(echo "{\"ociVersion\":\"1.0.2\",\"id\":\"c2\",\"status\":\"creating\",\"pid\":$pid,\"bundle\":\"/b/c2\"}" | $HOOK createRuntime 2>&1)
kill $pid
check refused-without-filtering sh -c "echo '$out' | grep -q 'net.vlan=\"50\": bridge plain has VLAN filtering off'"
check refusal-leaves-nothing same_as "$before"
