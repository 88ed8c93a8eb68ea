# net.ip=dhcp on a macvlan over <parent>.<vlan>: the lease comes from the
# DHCP server of its own VLAN, not from the one on another VLAN of the
# same wire; teardown releases it and removes the sub-interface.
. /opt/lib.sh
$IP link add sw type bridge && $IP link set sw up
$IP link add lan0 type veth peer name sw0 && $IP link set sw0 master sw up && $IP link set lan0 up
for vlan in 50 60; do
    tagged_peer $vlan 10.0.$vlan.1/24
    # One server per VLAN, each with its own range.
    $IP netns exec p$vlan /opt/bin/dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=eth0.$vlan \
        --bind-interfaces --dhcp-authoritative --user=root --group=root --no-ping \
        --dhcp-range=10.0.$vlan.100,10.0.$vlan.150,255.255.255.0,2m --dhcp-option=option:router,10.0.$vlan.1 \
        --dhcp-leasefile=/tmp/leases-$vlan --log-facility=/tmp/dnsmasq-$vlan.log >/dev/null 2>&1 &
done
sleep 1
before=$(settled_snapshot)

start d1 '{"net.parent":"lan0","net.vlan":"50","net.ip":"dhcp","net.dhcp.timeout":"30s"}'
check sub-interface-made $IP -d link show dev lan0.50
check address-from-vlan-50 sh -c "nsenter -t \$(cat /tmp/d1.pid) -n $IP -4 addr show eth0 | grep -q 'inet 10.0.50.1[0-5][0-9]/24'"
check lifetime-is-the-lease sh -c "nsenter -t \$(cat /tmp/d1.pid) -n $IP -4 addr show eth0 | grep -q 'valid_lft 1[0-2][0-9]sec'"
check default-route-from-router inside d1 sh -c "$IP route | grep -q 'default via 10.0.50.1 dev eth0'"
check reaches-its-server inside d1 ping -c 2 -W 2 10.0.50.1
check lease-on-vlan-50 sh -c "grep -q ' 10.0.50.1[0-5][0-9] ' /tmp/leases-50"
check no-lease-on-vlan-60 sh -c "! grep -q . /tmp/leases-60"
stop d1
check released sh -c "sleep 1; ! grep -q . /tmp/leases-50"
check sub-interface-removed sh -c "! $IP link show dev lan0.50"
check no-records sh -c "[ -z \"\$(ls /run/netrt/containers)\" ]"
check nothing-left same_as "$before"
