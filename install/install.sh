#!/usr/bin/env bash
# netrt's installer: builds the release binaries, installs them with their
# man pages and shell completions, writes the podman/CRI-O hooks.d file and
# registers the runtime in Docker's daemon.json when Docker is present (both
# with `netrt configure`), then proves the work on this machine with one
# busybox container run through netrt by runc.
#
#   install/install.sh [--prefix DIR] [--hooks-dir DIR] [--docker-config FILE] [--systemd-dir DIR] [--no-demo]
#   install/install.sh --uninstall [--prefix DIR]
#
# Idempotent: a second run changes nothing. --uninstall undoes what the
# install did, following the manifest it wrote.
set -euo pipefail

prefix=/usr/local
hooks_dir=/usr/share/containers/oci/hooks.d
# DHCP leases are renewed by netrt-hook renew, from a timer every 30 s:
# its units go here where systemd runs (or wherever --systemd-dir says).
systemd_dir=""
docker_config=/etc/docker/daemon.json
demo=yes
uninstall=no
while (($#)); do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --hooks-dir) hooks_dir=${2:?--hooks-dir needs a directory}; shift 2 ;;
        --hooks-dir=*) hooks_dir=${1#*=}; shift ;;
        --docker-config) docker_config=${2:?--docker-config needs a file}; shift 2 ;;
        --docker-config=*) docker_config=${1#*=}; shift ;;
        --no-demo) demo=no; shift ;;
        --systemd-dir) systemd_dir=${2:?--systemd-dir needs a directory}; shift 2 ;;
        --systemd-dir=*) systemd_dir=${1#*=}; shift ;;
        --uninstall) uninstall=yes; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
prefix=${prefix%/}

say() { echo "netrt install: $*"; }
die() { echo "netrt install: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root: it installs under $prefix and writes $hooks_dir"

source_dir=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=$prefix/bin
man_dir=$prefix/share/man/man8
completion_files=("$prefix/share/bash-completion/completions/netrt" "$prefix/share/bash-completion/completions/netrt-hook"
    "$prefix/share/zsh/vendor-completions/_netrt" "$prefix/share/zsh/vendor-completions/_netrt-hook"
    "$prefix/share/fish/vendor_completions.d/netrt.fish" "$prefix/share/fish/vendor_completions.d/netrt-hook.fish")
state_dir=$prefix/share/netrt
manifest=$state_dir/install-manifest
hook_file=$hooks_dir/netrt.json
# netrt's own configuration file (trust.env for Docker before 24).
netrt_config=${NETRT_CONFIG:-/etc/netrt/netrt.json}

apt_install() {
    say "installing Debian packages $* (missing)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

need_commands() { # command:package ...
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

dockerd_pid() { pidof -s dockerd 2>/dev/null || true; }

reload_docker() {
    local pid
    pid=$(dockerd_pid)
    if [[ -n $pid ]]; then
        kill -HUP "$pid"
        say "told dockerd (pid $pid) to reload $docker_config (SIGHUP)"
    else
        say "dockerd is not running; it reads $docker_config when it starts"
    fi
}

systemd_runs() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

manifest_get() { if [[ -f $manifest ]]; then sed -n "s/^$1=//p" "$manifest" | tail -1; fi; }

# ---------------------------------------------------------------- uninstall
if [[ $uninstall == yes ]]; then
    [[ -f $manifest ]] || die "no manifest at $manifest: nothing installed under $prefix"
    manifest_text=$(cat "$manifest")
    hook_file=$(manifest_get hooks_file)
    docker_config=$(manifest_get docker_config)
    backup=$docker_config.netrt-backup
    written_sum=$(manifest_get docker_written)
    env_flag=()
    [[ $(manifest_get docker_env) == yes ]] && env_flag=(--env)
    if [[ $(manifest_get docker_configured) == yes && -x $bin_dir/netrt ]]; then
        "$bin_dir/netrt" configure docker --config "$docker_config" --remove "${env_flag[@]}" | sed -n '1p;/trust.env/p' |
            while read -r line; do say "$line"; done
        env_flag=()
        reload_docker
    elif [[ -n $written_sum ]]; then
        # An install made before `netrt configure` existed.
        need_commands jq:jq
        if [[ -f $docker_config && $(sha256sum <"$docker_config" | cut -d' ' -f1) == "$written_sum" ]]; then
            if [[ $(manifest_get docker_original) == absent ]]; then
                rm -f "$docker_config"
                say "removed $docker_config (there was none before the install)"
            else
                cp -p "$backup" "$docker_config"
                say "restored $docker_config from $backup"
            fi
            rm -f "$backup"
        elif [[ -f $docker_config ]]; then
            jq 'del(.runtimes.netrt) | if .runtimes == {} then del(.runtimes) else . end' "$docker_config" >"$docker_config.netrt-tmp"
            mv "$docker_config.netrt-tmp" "$docker_config"
            say "removed runtimes.netrt from $docker_config (changed since the install, so edited; the original is kept in $backup)"
        fi
        reload_docker
    fi
    if ((${#env_flag[@]})) && [[ -f $netrt_config ]]; then
        # Docker's registration was the admin's: only the switch goes.
        need_commands jq:jq
        jq 'del(.trust.env) | if .trust == {} then del(.trust) else . end' "$netrt_config" >"$netrt_config.netrt-tmp"
        if [[ $(jq -c . "$netrt_config.netrt-tmp") == "{}" ]]; then
            rm -f "$netrt_config" "$netrt_config.netrt-tmp"
        else
            mv "$netrt_config.netrt-tmp" "$netrt_config"
        fi
        say "$netrt_config: trust.env taken out: containers' NETRT_* variables are refused again"
    fi
    if [[ -x $bin_dir/netrt && -e $hook_file ]]; then
        "$bin_dir/netrt" configure podman --config "$hook_file" --remove | sed -n '1p' | while read -r line; do say "$line"; done
    fi
    units_dir=$(manifest_get systemd_dir)
    if [[ -n $units_dir ]]; then
        if systemd_runs; then
            systemctl disable --now netrt-renew.timer >/dev/null 2>&1 || true
        fi
        for unit in netrt-renew.service netrt-renew.timer; do
            [[ -e $units_dir/$unit ]] && rm -f "$units_dir/$unit" && say "removed $units_dir/$unit"
        done
        if systemd_runs; then systemctl daemon-reload; fi
    fi
    for file in "$bin_dir/netrt" "$bin_dir/netrt-hook" "$man_dir/netrt.8" "$man_dir/netrt-hook.8" "$hook_file" "${completion_files[@]}"; do
        [[ -e $file ]] && rm -f "$file" && say "removed $file"
    done
    rm -f "$manifest"
    say "removed $manifest"
    # Deepest first; a directory something else now uses stays.
    sed -n 's/^created_dir=//p' <<<"$manifest_text" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- |
        while read -r dir; do rmdir "$dir" 2>/dev/null && say "removed directory $dir"; done || true
    say "netrt is uninstalled (records under /run/netrt of running containers stay until they stop)"
    exit 0
fi

# ---------------------------------------------------------------- install
need_commands cc:gcc pkg-config:pkg-config jq:jq protoc:protobuf-compiler
[[ -e /usr/include/stdio.h ]] || apt_install libc6-dev
command -v cargo >/dev/null || die "cargo is missing: install Rust (rustup, or Debian's cargo if it is new enough: rust-version in Cargo.toml) and run again"

say "building the release binaries (cargo build --release)"
(cd "$source_dir" && cargo build --release --locked --quiet -p netrt-hook -p netrt)

# Directories this install makes, so that --uninstall removes them again.
created_dirs=$(if [[ -f $manifest ]]; then sed -n 's/^created_dir=//p' "$manifest"; fi)
note_new_dirs() {
    local dir=$1
    while [[ ! -d $dir ]]; do
        created_dirs+=$'\n'$dir
        dir=$(dirname "$dir")
    done
}
if [[ -z $systemd_dir ]] && systemd_runs; then systemd_dir=/etc/systemd/system; fi
for dir in "$bin_dir" "$man_dir" "$state_dir" "$hooks_dir" $systemd_dir; do note_new_dirs "$dir"; done
for file in "${completion_files[@]}"; do note_new_dirs "$(dirname "$file")"; done

changed=no
put() { # source destination mode
    if [[ -f $2 ]] && cmp -s "$1" "$2"; then
        say "unchanged: $2"
        return
    fi
    install -D -m "$3" "$1" "$2"
    say "installed $2"
    changed=yes
}
put "$source_dir/target/release/netrt-hook" "$bin_dir/netrt-hook" 0755
put "$source_dir/target/release/netrt" "$bin_dir/netrt" 0755
put "$source_dir/man/netrt-hook.8" "$man_dir/netrt-hook.8" 0644
put "$source_dir/man/netrt.8" "$man_dir/netrt.8" 0644
completion=$(mktemp)
for file in "${completion_files[@]}"; do
    name=$(basename "$file" .fish)
    name=${name#_}
    case $file in
        */bash-completion/*) shell=bash ;;
        */zsh/*) shell=zsh ;;
        *) shell=fish ;;
    esac
    "$source_dir/target/release/$name" completions "$shell" >"$completion"
    put "$completion" "$file" 0644
done
rm -f "$completion"

# The renewal timer of DHCP leases (net.ip=dhcp): without renewals the
# kernel drops a container's address at the end of its lease.
if [[ -n $systemd_dir ]]; then
    unit=$(mktemp)
    sed "s|@HOOK@|$bin_dir/netrt-hook|" "$source_dir/install/systemd/netrt-renew.service" >"$unit"
    put "$unit" "$systemd_dir/netrt-renew.service" 0644
    put "$source_dir/install/systemd/netrt-renew.timer" "$systemd_dir/netrt-renew.timer" 0644
    rm -f "$unit"
    if systemd_runs; then
        systemctl daemon-reload
        systemctl enable --now netrt-renew.timer >/dev/null 2>&1 && say "enabled netrt-renew.timer: DHCP leases are renewed every 30 s"
    else
        say "systemd is not running: enable netrt-renew.timer once it does (systemctl enable --now netrt-renew.timer)"
    fi
else
    say "systemd is not running, so no renewal timer: for DHCP leases (net.ip=dhcp), renew every 30 s from cron, e.g. in /etc/cron.d/netrt:"
    say "  * * * * * root $bin_dir/netrt-hook renew; sleep 30; $bin_dir/netrt-hook renew"
fi

configured=$("$bin_dir/netrt" configure podman --config "$hook_file") ||
    die "$hook_file could not be written (see above)"
say "$(head -n 1 <<<"$configured")"
[[ $configured == *unchanged* ]] || changed=yes

docker_written=$(manifest_get docker_written)
docker_original=$(manifest_get docker_original)
docker_configured=$(manifest_get docker_configured)
docker_env=$(manifest_get docker_env)
if command -v dockerd >/dev/null || [[ -d $(dirname "$docker_config") ]]; then
    # Docker before 24 (Debian 12 has 20.10) and Compose 1.x pass settings
    # only as NETRT_* variables, which netrt reads only with trust.env on.
    env_flag=()
    docker_major=$(dockerd --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    if [[ -n $docker_major ]] && ((docker_major < 24)); then
        env_flag=(--env)
        note_new_dirs "$(dirname "$netrt_config")"
    fi
    # netrt configure keeps every other key, and the original beside the
    # file for --uninstall (netrt configure docker --remove).
    configured=$("$bin_dir/netrt" configure docker --config "$docker_config" "${env_flag[@]}") ||
        die "$docker_config could not be edited (see above); fix it and run again"
    first_line=$(head -n 1 <<<"$configured")
    say "$first_line"
    if [[ $configured == *"trust.env true:"* ]]; then
        docker_env=yes
        changed=yes
        say "Docker $docker_major is older than 24 and passes settings only as NETRT_* variables, so netrt now reads them (trust.env in $netrt_config); an image's ENV sets them too, so any image run with --runtime=netrt may ask for netrt's settings; turn it off with: netrt configure docker --remove --env"
    fi
    if [[ $first_line != *unchanged ]]; then
        [[ -z $docker_written ]] && docker_configured=yes
        changed=yes
        reload_docker
    fi
else
    say "Docker is not installed: $docker_config not written (run this again after installing docker.io)"
fi

new_manifest=$(mktemp)
{
    echo "# netrt install manifest: what install/install.sh wrote; --uninstall reads it"
    echo "prefix=$prefix"
    echo "hooks_file=$hook_file"
    echo "docker_config=$docker_config"
    [[ -n $systemd_dir ]] && echo "systemd_dir=$systemd_dir"
    [[ -n $docker_written ]] && echo "docker_written=$docker_written"
    [[ -n $docker_original ]] && echo "docker_original=$docker_original"
    [[ -n $docker_configured ]] && echo "docker_configured=$docker_configured"
    [[ -n $docker_env ]] && echo "docker_env=$docker_env"
    sed '/^$/d; s/^/created_dir=/' <<<"$created_dirs" | sort -u
} >"$new_manifest"
if [[ -f $manifest ]] && cmp -s "$new_manifest" "$manifest"; then
    rm -f "$new_manifest"
else
    install -D -m 0644 "$new_manifest" "$manifest"
    rm -f "$new_manifest"
    say "wrote $manifest (what --uninstall removes)"
fi
[[ $changed == no ]] && say "everything was already installed; nothing changed"

[[ $demo == yes ]] || exit 0
exec "$source_dir/install/demo.sh" "$bin_dir"
