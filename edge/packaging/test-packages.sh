#!/usr/bin/env bash
# Tests both Debian packages the way a gateway and a server without a Swift toolchain get them:
# builds them (edge/package.sh, cloud/package.sh), runs lintian, then, as root in a private mount
# namespace, installs them with dpkg into a throwaway copy-on-write view of this machine's root (an
# overlay whose writes land in a tmpfs) with the toolchain's directory covered by an empty tmpfs.
# There the installed collector and agent run as their system users, readings go in at the
# agent's HTTP input, and each must be stored by the collector exactly once. Then reinstall,
# remove (spool, database, users and configuration stay) and purge (all gone). Nothing on the host
# changes: the overlay, its tmpfs and the mounts disappear with the namespace.
#
#   edge/packaging/test-packages.sh [--no-build]
#
# Ends with "N passed, N failed"; exit 1 when anything failed. Skips with a reason only when not
# root or when mount namespaces or overlayfs are unavailable, and never when CI=true.
set -euo pipefail
SELF=$(readlink -f "$0")

readings=3000
device=gw-package

passed=0
failed=0
check() { # check NAME COMMAND...: runs COMMAND, counts and prints the outcome
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok     $name"
    else
        failed=$((failed + 1))
        echo "FAILED $name"
    fi
}
summary() { # summary [PREFIX]
    echo "${1:-}$passed passed, $failed failed"
    ((failed == 0))
}
skip() {
    if [[ "${CI:-}" == true ]]; then
        echo "FAILED cannot run in CI: $*"
        failed=$((failed + 1))
        summary || exit 1
    fi
    echo "skipped: $*"
    exit 0
}
# wait_for SECONDS COMMAND...: polls COMMAND until it succeeds (an external process forces the
# wait; the deadline bounds it).
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Stage 3, inside the chroot: the packages installed and run without a toolchain.
in_chroot() {
    export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
    cd /tmp
    pids=() # global: the EXIT trap reads it after this function has returned
    # Each pid is a `timeout` whose child is the program: stop both, so nothing outlives the test.
    trap 'for pid in "${pids[@]}"; do pkill -TERM -P "$pid" || true; kill "$pid" 2>/dev/null || true; done' EXIT

    check "the toolchain is hidden (no swift on PATH, $TOOLCHAIN empty)" \
        bash -c "! command -v swift >/dev/null && [ -z \"\$(ls -A '$TOOLCHAIN')\" ]"
    if [[ -x /tmp/dynamic/edge-agent ]]; then
        check "control: the dynamically linked build does not start here (libswiftCore missing)" \
            bash -c '! /tmp/dynamic/edge-agent --help >/dev/null 2>/tmp/dynamic.err && grep -q libswift /tmp/dynamic.err'
    fi

    # man-db's trigger rebuilds its index after every dpkg run: minutes here, and not under test.
    rm -f /var/lib/man-db/auto-update
    check "dpkg -i installs both packages (dependencies checked)" \
        dpkg -i /tmp/debs/cloud-collector_*.deb /tmp/debs/edge-agent_*.deb
    for binary in edge-agent cloud-collector; do
        check "$binary: every library is found without the toolchain" \
            bash -c "ldd /usr/bin/$binary >/dev/null && ! ldd /usr/bin/$binary | grep -q 'not found'"
    done
    check "system users and groups edge-agent and edge-sync exist, with nologin" bash -c \
        'for u in edge-agent edge-sync; do getent passwd $u | grep -q ":/usr/sbin/nologin$" && getent group $u >/dev/null || exit 1; done'
    check "state directories are 0700 and owned by the service users" bash -c \
        '[ "$(stat -c %a:%U:%G /var/lib/edge-agent)" = 700:edge-agent:edge-agent ] &&
         [ "$(stat -c %a:%U:%G /var/lib/edge-sync-collector)" = 700:edge-sync:edge-sync ]'
    check "the example configurations are conffiles" bash -c \
        'dpkg-query -W -f="\${Conffiles}" edge-agent | grep -q /etc/edge-agent/agent.json &&
         dpkg-query -W -f="\${Conffiles}" cloud-collector | grep -q /etc/edge-sync/collector.json'
    if command -v systemd-analyze >/dev/null; then
        for unit in edge-agent cloud-collector; do
            check "systemd-analyze verify accepts the installed $unit.service" \
                bash -c "systemd-analyze verify /lib/systemd/system/$unit.service 2>&1 | tee /tmp/verify.log |
                    { ! grep -q $unit.service; }; cat /tmp/verify.log >&2"
        done
    fi

    as_agent() { setpriv --reuid=edge-agent --regid=edge-agent --init-groups -- "$@"; }
    # start USER LOG PATTERN COMMAND...: COMMAND as USER under `timeout 300`, stderr to LOG, until
    # it logs "event=listening PATTERNaddress=…"; sets started (the timeout's pid) and address.
    # setpriv is started directly (not through a function), so $! is the timeout itself.
    start() {
        setpriv --reuid="$1" --regid="$1" --init-groups -- timeout 300 "${@:4}" 2>"$2" &
        started=$!
        pids+=("$started")
        wait_for 30 grep -q "event=listening $3" "$2" || return 1
        address=$(sed -n "s/.*event=listening ${3}address=\([^ ]*\).*/\1/p" "$2" | head -1)
    }
    # stop PID: SIGTERM to the program under `timeout` (PID), then PID's status is the program's.
    stop() {
        local child
        child=$(pgrep -P "$1") && kill -TERM "$child"
        local status=0
        wait "$1" || status=$?
        return "$status"
    }
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >/tmp/operator-token
    chown edge-sync /tmp/operator-token
    chmod 0400 /tmp/operator-token
    check "cloud-collector token add (as edge-sync, in its state directory)" bash -c \
        "setpriv --reuid=edge-sync --regid=edge-sync --init-groups -- cloud-collector token add \
            --data-dir /var/lib/edge-sync-collector $device >/etc/edge-agent/token"
    chmod 0600 /etc/edge-agent/token
    # The collector as its service user, on its packaged configuration, on a free port.
    local started="" address=""
    check "the installed collector starts and listens" start edge-sync /tmp/collector.log "" \
        cloud-collector serve --config /etc/edge-sync/collector.json --listen 127.0.0.1:0 \
        --operator-token-file /tmp/operator-token
    local collector=$started collector_address=$address

    # The agent as its service user, on its packaged configuration edited as an operator would;
    # the token handed over as systemd's LoadCredential= does (a copy only the service can read).
    sed -i -e "s|\"device\": \"gateway-17\"|\"device\": \"$device\"|" \
        -e "s|\"url\": \"https://collector.example.net\"|\"url\": \"http://$collector_address\"|" \
        /etc/edge-agent/agent.json
    install -m 0400 -o edge-agent -g edge-agent /etc/edge-agent/token /tmp/agent-token
    check "edge-agent config check accepts the edited configuration" \
        bash -c "setpriv --reuid=edge-agent --regid=edge-agent --init-groups -- \
            edge-agent config check /etc/edge-agent/agent.json >/dev/null"
    check "the installed agent starts and listens" start edge-agent /tmp/agent.log "input=http " \
        edge-agent run --config /etc/edge-agent/agent.json --token-file /tmp/agent-token --listen 127.0.0.1:0
    local agent=$started agent_address=$address

    # $readings readings in three requests; value i.5 at second i.
    : >/tmp/expected
    local part
    for part in 0 1 2; do
        awk -v from=$((part * readings / 3)) -v to=$(((part + 1) * readings / 3)) \
            'BEGIN { for (i = from; i < to; i++) printf "weather,site=pkg temp=%d.5 %d000000000\n", i, 1700000000 + i }' \
            >/tmp/part-$part.lp
        awk '{ split($2, t, "="); print $3 "," t[2] }' /tmp/part-$part.lp >>/tmp/expected
        check "the agent takes part $part of the readings (HTTP 204)" bash -c \
            "[ \"\$(curl -sS -o /dev/null -w '%{http_code}' --data-binary @/tmp/part-$part.lp \
                'http://$agent_address/write?db=any')\" = 204 ]"
    done
    sort -o /tmp/expected /tmp/expected

    queue_empty() {
        as_agent edge-agent status --data-dir /var/lib/edge-agent --json 2>/dev/null |
            grep -q '"queued_readings" *: *0[,}]'
    }
    check "the agent's queue empties (the collector acknowledged everything)" wait_for 60 queue_empty
    curl -sS -H "Authorization: Bearer $(cat /tmp/operator-token)" -o /tmp/stored.csv \
        "http://$collector_address/v1/readings?device=$device&series=weather%2Csite%3Dpkg%20temp&format=csv&limit=1000000" || true
    tail -n +2 /tmp/stored.csv | cut -d, -f1,2 | sort >/tmp/stored
    check "every reading is stored exactly once ($readings sent, $(wc -l </tmp/stored) stored)" \
        cmp -s /tmp/expected /tmp/stored
    if ! cmp -s /tmp/expected /tmp/stored; then
        echo "first differences (sent < > stored):"
        diff /tmp/expected /tmp/stored | head -n 6 || true
    fi
    check "no (stream, seq) is stored twice" \
        bash -c '[ "$(tail -n +2 /tmp/stored.csv | cut -d, -f3,4 | sort -u | wc -l)" = '"$readings"' ]'

    check "the agent exits 0 on SIGTERM" stop "$agent"
    check "the collector exits 0 on SIGTERM" stop "$collector"
    pids=()

    check "dpkg -i again (same version: the upgrade path) succeeds" \
        dpkg -i /tmp/debs/cloud-collector_*.deb /tmp/debs/edge-agent_*.deb
    check "the edited configuration survives the reinstall" grep -q "$device" /etc/edge-agent/agent.json
    check "dpkg -r removes both packages" dpkg -r edge-agent cloud-collector
    check "remove took the binaries and units" bash -c \
        '! [ -e /usr/bin/edge-agent ] && ! [ -e /usr/bin/cloud-collector ] && ! [ -e /lib/systemd/system/edge-agent.service ]'
    check "remove kept the spool, the database, the configuration and the users" bash -c \
        'ls /var/lib/edge-agent/* >/dev/null && ls /var/lib/edge-sync-collector/* >/dev/null &&
         grep -q '"$device"' /etc/edge-agent/agent.json && [ -e /etc/edge-sync/collector.json ] &&
         getent passwd edge-agent >/dev/null && getent passwd edge-sync >/dev/null'
    check "dpkg -i after remove reuses the kept user and state" bash -c \
        'uid=$(id -u edge-agent) && dpkg -i /tmp/debs/edge-agent_*.deb >/dev/null && [ "$(id -u edge-agent)" = "$uid" ] &&
         [ "$(stat -c %U /var/lib/edge-agent)" = edge-agent ]'
    check "dpkg -P purges both packages" dpkg -P edge-agent cloud-collector
    check "purge dropped the spool, the database, the conffiles, the users and the groups" bash -c \
        '! [ -e /var/lib/edge-agent ] && ! [ -e /var/lib/edge-sync-collector ] &&
         ! [ -e /etc/edge-agent/agent.json ] && ! [ -e /etc/edge-sync/collector.json ] &&
         ! getent passwd edge-agent && ! getent passwd edge-sync && ! getent group edge-agent && ! getent group edge-sync'
    check "dpkg knows neither package any more" bash -c \
        '! dpkg-query -W -f="\${Status}\n" edge-agent cloud-collector 2>/dev/null | grep -q installed'
    if ((failed)); then
        for log in /tmp/collector.log /tmp/agent.log; do
            echo "--- last lines of $log"
            tail -n 20 "$log" || true
        done
    fi
    summary "install test: "
}

# Stage 2, in the private mount namespace: the throwaway root, then stage 3 in it.
in_namespace() {
    local scratch=$1 debs=$2 dynamic=$3
    mount -t tmpfs -o mode=0700 edge-sync-test "$scratch"
    mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
    local root=$scratch/root
    mount -t tmpfs tmpfs "$root$TOOLCHAIN"
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    # An empty /run: no /run/systemd/system, so the maintainer scripts leave systemd alone, as in
    # a chroot or container.
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    mkdir "$root/tmp/debs"
    cp "$debs"/edge-agent_*.deb "$debs"/cloud-collector_*.deb "$root/tmp/debs/"
    if [[ -n "$dynamic" ]]; then
        mkdir "$root/tmp/dynamic"
        cp "$dynamic" "$root/tmp/dynamic/edge-agent"
    fi
    cp "$SELF" "$root/tmp/test-packages.sh"
    # The repository itself is not there either: the install must not need anything from it.
    mount -t tmpfs tmpfs "$root$REPOSITORY"
    # No terminal: dpkg must not stop to ask anything.
    exec chroot "$root" /bin/bash /tmp/test-packages.sh --in-chroot </dev/null
}

case "${1:-}" in
--in-chroot)
    in_chroot
    exit
    ;;
--in-namespace)
    shift
    in_namespace "$@"
    ;;
esac

# Stage 1: build, lint, then the namespace.
repository=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repository"
build=()
[[ "${1:-}" == --no-build ]] && build=(--no-build)
debs=$repository/.build-release-static/debian
for side in edge cloud; do
    if ! "$side/package.sh" "${build[@]}" >/dev/null; then
        echo "FAILED $side/package.sh (output above)"
        failed=$((failed + 1))
        summary || exit 1
    fi
    passed=$((passed + 1))
    echo "ok     $side/package.sh builds the package"
done

if command -v lintian >/dev/null; then
    for package in edge-agent cloud-collector; do
        check "lintian: no error, warning or info tag on $package that is not explained" \
            lintian --fail-on error,warning,info --display-info "$debs/${package}"_*.deb
    done
elif [[ "${CI:-}" == true ]]; then
    check "lintian is installed (.ci/run installs it)" false
else
    echo "skipped lintian: not installed (apt-get install lintian)"
fi

[[ $(id -u) == 0 ]] || skip "dpkg -i into an overlay needs root (run as root or in CI)"
command -v unshare >/dev/null || skip "unshare (util-linux) is missing"
unshare -m true 2>/dev/null || skip "this machine does not allow mount namespaces (unshare -m failed)"
unshare -m sh -c 'mount -t tmpfs t /mnt && mkdir /mnt/u /mnt/w /mnt/r &&
    mount -t overlay o -o lowerdir=/,upperdir=/mnt/u,workdir=/mnt/w /mnt/r' 2>/dev/null ||
    skip "overlayfs over / is not available here"

TOOLCHAIN=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
TOOLCHAIN=${TOOLCHAIN%/usr}
# Hiding it means covering its directory: not possible when it is installed into / or /usr.
case "$TOOLCHAIN" in
"" | / | /usr | /usr/local)
    check "the Swift toolchain is in a directory of its own (found at ${TOOLCHAIN:-/})" false
    summary || exit 1
    ;;
esac
export TOOLCHAIN REPOSITORY=$repository
# The dynamically linked debug build, if there is one: it must fail to start without the toolchain.
dynamic=""
for candidate in .build/debug/edge-agent .build/release/edge-agent; do
    [[ -x $candidate ]] && dynamic=$repository/$candidate && break
done
[[ -n "$dynamic" || "${CI:-}" != true ]] || check "a dynamically linked build exists for the control (swift test makes one)" false
[[ -n "$dynamic" ]] || echo "skipped the control runs: no dynamically linked build in .build"
refuses_dynamic() { # package.sh must fail on the dynamic build, naming a toolchain library
    local output out status
    out=$(mktemp -d)
    output=$(edge/package.sh --binary "$dynamic" --output "$out" 2>&1) && status=0 || status=$?
    rm -rf "$out"
    ((status != 0)) && grep -q 'needs libswift.* from the Swift toolchain' <<<"$output"
}
[[ -z "$dynamic" ]] || check "control: package.sh refuses the dynamically linked build" refuses_dynamic

scratch=$(mktemp -d)
namespace_output=$scratch.out
status=0
# Bounded: a hung install must not hang CI (the whole stage takes well under a minute).
timeout 900 unshare -m --propagation private "$SELF" --in-namespace "$scratch" "$debs" "$dynamic" | tee "$namespace_output" || status=$?
rmdir "$scratch"
# The namespace's own counts, added to this stage's.
inner=$(tail -n 1 "$namespace_output")
rm -f "$namespace_output"
if [[ $inner =~ ^install\ test:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    ((status == 0 || BASH_REMATCH[2] > 0)) || failed=$((failed + 1))
else
    check "the install test in the namespace ran to its end (exit $status)" false
fi
summary
