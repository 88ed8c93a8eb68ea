# macvlan on <parent>.<vlan>: reaches a peer on its VLAN, not one on
# another VLAN; the sub-interface is made once for two containers and
# removed after the second stops.
. /opt/lib.sh
# The LAN: a plain bridge as the switch carries tagged frames between the
# parent (lan0) and two peers, each in its own namespace, tagged 50 and 60,
# with addresses in the same subnet so only the tags keep them apart.
$IP link add sw type bridge && $IP link set sw up
$IP link add lan0 type veth peer name sw0 && $IP link set sw0 master sw up && $IP link set lan0 up
for vlan in 50 60; do
    tagged_peer $vlan 10.0.0.$((vlan / 10))/24
done
# p50 is 10.0.0.5, p60 is 10.0.0.6.
before=$(settled_snapshot)

start c1 '{"net.parent":"lan0","net.vlan":"50","net.ip":"10.0.0.11/24"}'
check sub-interface-made $IP -d link show dev lan0.50
check sub-interface-is-vlan-50 sh -c "$IP -d link show dev lan0.50 | grep -q 'vlan protocol 802.1Q id 50'"
check macvlan-inside inside c1 sh -c "$IP -d link show eth0 | grep -q macvlan"
check reaches-same-vlan inside c1 ping -c 2 -W 2 10.0.0.5
check_not no-reach-other-vlan inside c1 ping -c 2 -W 2 10.0.0.6

start c2 '{"net.parent":"lan0","net.vlan":"50","net.ip":"10.0.0.12/24","net.egress":"5mbit"}'
check one-sub-interface sh -c "[ \$($IP -d link show type vlan | grep -c 'id 50') = 1 ]"
check second-reaches inside c2 ping -c 2 -W 2 10.0.0.5
check second-shaped-inside sh -c "nsenter -t \$(cat /tmp/c2.pid) -n /opt/bin/tc qdisc show dev eth0 | grep -q 'tbf 1: root.*rate 5Mbit'"
check second-record test -f /run/netrt/containers/c2.json

stop c1
check kept-while-used $IP link show dev lan0.50
stop c2
check removed-after-last sh -c "! $IP link show dev lan0.50"
check no-records sh -c "[ -z \"\$(ls /run/netrt/containers)\" ]"
check nothing-left same_as "$before"

# A sub-interface the admin made is used, and never deleted by netrt.
$IP link add link lan0 name lan0.60 type vlan id 60 && $IP link set lan0.60 up
start c3 '{"net.parent":"lan0","net.vlan":"60","net.ip":"10.0.0.13/24"}'
check reaches-vlan-60 inside c3 ping -c 2 -W 2 10.0.0.6
check_not no-reach-vlan-50 inside c3 ping -c 2 -W 2 10.0.0.5
stop c3
check admin-sub-interface-kept $IP link show dev lan0.60
