#!/usr/bin/env bash
# netrt's demo, run by install.sh: one busybox container through the netrt
# wrapper with runc underneath, on a bridge of its own with a static IP and
# a 10 Mbit/s egress limit; it prints the container's address and the rate
# iperf3 measures at the receiver, then removes everything it made.
#
#   install/demo.sh BIN_DIR      (BIN_DIR holds netrt and netrt-hook)
set -euo pipefail

bin_dir=${1:?usage: demo.sh BIN_DIR}
netrt=$bin_dir/netrt
bridge=nrtdemo0
limit_mbit=10
port=5299
id=netrt-demo
work=$(mktemp -d)

say() { echo "netrt demo: $*"; }
die() { echo "netrt demo: $*" >&2; exit 1; }

missing=()
command -v runc >/dev/null || missing+=(runc)
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v nsenter >/dev/null || missing+=(util-linux)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
if ((${#missing[@]})); then
    say "installing Debian packages ${missing[*]} (missing)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
    "$netrt" delete --force "$id" >/dev/null 2>&1 || true
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$netrt" delete --force "$id" >/dev/null 2>&1 || true
ip link del "$bridge" 2>/dev/null || true

# A documentation range no route of this host reaches yet, so the demo's
# traffic can only stay on its own bridge.
network=
for candidate in 203.0.113 198.51.100 192.0.2; do
    if [[ -z $(ip -4 route show table all root "$candidate.0/24") &&
          -z $(ip -4 route show table main match "$candidate.10" | grep -v '^default') ]]; then
        network=$candidate
        break
    fi
done
[[ -n $network ]] || die "203.0.113.0/24, 198.51.100.0/24 and 192.0.2.0/24 are all in use on this host; no free test network"
host_address=$network.1
container_address=$network.10/24
say "made bridge $bridge with $host_address/24 (a documentation range this host does not use; traffic stays on it)"
ip link add "$bridge" type bridge
# A bridge without ports takes its first port's MAC unless its own is fixed;
# netrt refuses to change a host bridge, so fix the one the kernel chose.
ip link set "$bridge" address "$(cat "/sys/class/net/$bridge/address")"
ip address add "$host_address/24" dev "$bridge"
ip link set "$bridge" up

mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in sh sleep; do ln -s busybox "$work/rootfs/bin/$applet"; done
(cd "$work" && runc spec)
jq --arg bridge "$bridge" --arg ip "$container_address" --arg egress "${limit_mbit}mbit" '
    .process.args = ["sleep", "60"] | .process.terminal = false |
    .annotations = {"net.bridge": $bridge, "net.ip": $ip, "net.egress": $egress}' \
    "$work/config.json" >"$work/config.json.new"
mv "$work/config.json.new" "$work/config.json"
say "starting busybox container $id through $netrt (runc underneath) with net.bridge=$bridge net.ip=$container_address net.egress=${limit_mbit}mbit"
"$netrt" create --bundle "$work" "$id" </dev/null >/dev/null 2>"$work/error" || die "create failed: $(cat "$work/error")"
"$netrt" start "$id" 2>"$work/error" || die "start failed: $(cat "$work/error")"
pid=$("$netrt" state "$id" | jq -r .pid)
address=$(nsenter -t "$pid" -n ip -brief address show dev eth0 | awk '{$2=""; print}' | tr -s ' ')
say "container $id: $address"

iperf3 -s -B "$host_address" -p "$port" -1 -J >"$work/server.json" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    ss -Hltn "sport = :$port" | grep -q . && break
    sleep 0.1
done
nsenter -t "$pid" -n iperf3 -c "$host_address" -p "$port" -t 3 -J --get-server-output >"$work/client.json" ||
    die "iperf3 failed: $(jq -r .error "$work/client.json" 2>/dev/null)"
wait "$server_pid" || true
server_pid=
received=$(jq '.server_output_json.end.sum_received.bits_per_second' "$work/client.json")
measured=$(awk -v bps="$received" -v limit="$limit_mbit" \
    'BEGIN { printf "%.2f Mbit/s over 3 s, against the limit of %d Mbit/s (%.0f %%)", bps / 1e6, limit, 100 * bps / (limit * 1e6) }')
say "measured at the receiver: $measured"

"$netrt" kill "$id" KILL
for _ in $(seq 50); do
    [[ $("$netrt" state "$id" | jq -r .status) == stopped ]] && break
    sleep 0.1
done
"$netrt" delete "$id"
ip link del "$bridge"
left=$("$bin_dir/netrt-hook" status --json | jq --arg id "$id" 'map(select(.id == $id)) | length')
say "stopped and deleted $id, removed $bridge; netrt records left for it: $left"
