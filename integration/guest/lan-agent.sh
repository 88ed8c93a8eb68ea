# A host of the virtual LAN (lan-host): its NIC eth0 is the one port of the
# bridge br0 its pools use, with the host's own address on br0; then it
# runs the test's commands from the console, one per line.
. /opt/lib.sh
$IP link add br0 type bridge
# A fixed MAC of its own: netrt refuses a bridge whose MAC is a port's.
$IP link set br0 address "02:$(cut -d: -f2- /sys/class/net/eth0/address)"
$IP link set eth0 master br0
$IP link set eth0 up
$IP link set br0 up
$IP addr add "$lanaddress" dev br0
mkdir -p /etc/netrt /run/netrt
stty -echo 2>/dev/null
echo "AGENT-READY $node"
while read -r line; do
    eval "$line" >/tmp/agent.out 2>&1
    status=$?
    sed 's/^/OUT /' /tmp/agent.out
    echo "DONE $status"
done
