# 25 containers as macvlans on lan0.50, set up at once, each with its own
# address and an egress limit: one sub-interface for all, every address in
# place once. Then 24 torn down at once: the sub-interface stays for the
# last user, and goes with it; nothing of netrt remains.
. /opt/lib.sh
N=25
$IP link add lan0 type veth peer name lan0p && $IP link set lan0 up && $IP link set lan0p up
host_ns=$(readlink /proc/self/ns/net)
before=$(settled_snapshot)

# The namespaces first, each checked to exist, so that only the hooks race.
for i in $(seq 1 $N); do
    mkdir -p /b/v$i
    echo "{\"ociVersion\":\"1.0.2\",\"annotations\":{\"net.parent\":\"lan0\",\"net.vlan\":\"50\",\"net.ip\":\"10.0.0.$((100 + i))/24\",\"net.egress\":\"$i""mbit\"}}" > /b/v$i/config.json
    unshare -n sleep 600 &
    echo $! > /tmp/v$i.pid
done
for i in $(seq 1 $N); do
    while [ "$(readlink /proc/$(cat /tmp/v$i.pid)/ns/net)" = "$host_ns" ]; do sleep 0.05; done
done
hooks=""
for i in $(seq 1 $N); do
    echo "{\"ociVersion\":\"1.0.2\",\"id\":\"v$i\",\"status\":\"creating\",\"pid\":$(cat /tmp/v$i.pid),\"bundle\":\"/b/v$i\"}" \
        | $HOOK createRuntime >/tmp/v$i.setup 2>&1 || echo "CHECK setup-v$i FAIL $(cat /tmp/v$i.setup)" &
    hooks="$hooks $!"
done
wait $hooks

check all-set-up sh -c "[ \$(ls /run/netrt/containers | grep -c '^v[0-9]*\.json$') = $N ]"
check one-sub-interface sh -c "[ \$($IP -d link show type vlan | grep -c 'id 50') = 1 ]"
addresses_ok=yes
for i in $(seq 1 $N); do
    [ "$(inside v$i $IP -4 -o addr show dev eth0 | grep -c "inet 10.0.0.$((100 + i))/24")" = 1 ] || addresses_ok="no: v$i"
    inside v$i /opt/bin/tc qdisc show dev eth0 | grep -q "tbf 1: root.*rate ${i}Mbit" || addresses_ok="no: v$i not shaped at ${i}mbit"
done
check every-address-and-limit-in-place sh -c "echo $addresses_ok; [ '$addresses_ok' = yes ]"
check every-address-claimed sh -c "[ \$(ls /run/netrt/addresses | wc -l) = $N ]"

hooks=""
for i in $(seq 1 $((N - 1))); do
    stop v$i &
    hooks="$hooks $!"
done
wait $hooks
check kept-for-the-last-user $IP link show dev lan0.50
check one-record-left sh -c "[ \"\$(ls /run/netrt/containers)\" = v$N.json ]"
stop v$N
check removed-after-the-last sh -c "! $IP link show dev lan0.50"
check nothing-left same_as "$before"
check nothing-of-netrt-left sh -c "[ -z \"\$(find /run/netrt/containers /run/netrt/addresses -mindepth 1)\" ] && [ -z \"\$($IP -d link show type macvlan)\" ]"
