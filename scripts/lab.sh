#!/usr/bin/env bash
# lab.sh: N shoal hosts on this machine, for people. The same topology as the Go test harness (test/lab):
# each host is a network namespace with a veth to a bridge that has no address, so the hosts' addresses
# exist only inside the lab; one shoald per host with its own data dir, control socket and containerd
# namespace. You drive each host with ./bin/shoal -H unix://<its control socket>.
#
#   scripts/lab.sh up [N]            make N hosts (default 3) and start shoald on each
#   scripts/lab.sh status            show hosts, processes and sockets
#   scripts/lab.sh down              stop everything and remove all that `up` made
#   scripts/lab.sh kill|start hN     SIGKILL / start again one host's shoald
#   scripts/lab.sh partition|heal hN cut hN off from the other hosts / undo it
#   scripts/lab.sh exec hN|out CMD   run CMD inside a host's namespace (or the Outside one)
#
# Environment: SHOALD (default ./bin/shoald), SHOAL (default ./bin/shoal), LAB_DIR (default /tmp/shoal-lab),
# LAB_SUBNET (first three octets, default 10.252.0), SHOALD_ARGS (extra shoald flags).
# Needs root, iproute2, nftables, util-linux (nsenter, unshare), containerd.
set -euo pipefail

P=shoal # names: bridge shoal-br, namespaces and veths shoal-hN, shoal-out; containerd namespaces lab-shoal-hN
SHOALD=${SHOALD:-./bin/shoald}
SHOAL=${SHOAL:-./bin/shoal}
LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
NET=${LAB_SUBNET:-10.252.0}
PORT=4242

die() { echo "lab.sh: $*" >&2; exit 1; }
hosts() { ls /run/netns 2>/dev/null | grep -E "^$P-h[0-9]+$" | sed "s/^$P-//" | sort -V || true; }
inns() { local ns=$1; shift; nsenter --net="/run/netns/$P-$ns" -- "$@"; }
pid_of() { cat "$LAB_DIR/$1/shoald.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

need() {
  [ "$(id -u)" -eq 0 ] || die "needs root"
  local t
  for t in ip nft nsenter unshare; do
    command -v $t >/dev/null || die "$t not found: apt-get install -y iproute2 nftables util-linux"
  done
}

containerd_up() {
  command -v ctr >/dev/null || die "containerd not installed: apt-get install -y containerd runc"
  ctr version >/dev/null 2>&1 && return 0
  echo "starting containerd (log: $LAB_DIR/containerd.log)"
  (containerd >"$LAB_DIR/containerd.log" 2>&1 &)
  for _ in $(seq 50); do ctr version >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "containerd did not start; see $LAB_DIR/containerd.log"
}

add_ns() { # name addr
  ip netns add "$P-$1"
  ip link add "$P-$1" type veth peer name eth0 netns "$P-$1"
  ip link set "$P-$1" addrgenmode none
  ip link set "$P-$1" master "$P-br" up
  ip -n "$P-$1" link set lo up
  ip -n "$P-$1" addr add "$2/24" dev eth0
  ip -n "$P-$1" link set eth0 up
}

start_host() { # hN
  local h=$1 addr="$NET.$((${1#h} + 10))"
  alive "$h" && die "$h is already running (pid $(pid_of "$h"))"
  mkdir -p "$LAB_DIR/$h/data"
  echo "=== lab.sh: $h start at $(date -Is)" >>"$LAB_DIR/$h/shoald.log"
  # Only the network namespace is entered (mounts shoald makes stay visible to containerd); its own UTS
  # namespace gives it the hostname hN. Every step execs, so the pid is shoald's.
  # shellcheck disable=SC2086
  setsid unshare --uts -- nsenter --net="/run/netns/$P-$h" -- \
    sh -c 'echo "$0" >/proc/sys/kernel/hostname && exec "$@"' "$h" \
    "$SHOALD" --data-dir "$LAB_DIR/$h/data" --control-socket "$LAB_DIR/$h/control.sock" \
    --listen-addr "$addr:$PORT" --advertise-addr "$addr:$PORT" --containerd-namespace "lab-$P-$h" \
    --log-format text ${SHOALD_ARGS:-} </dev/null >>"$LAB_DIR/$h/shoald.log" 2>&1 &
  echo $! >"$LAB_DIR/$h/shoald.pid"
  for _ in $(seq 150); do
    [ -S "$LAB_DIR/$h/control.sock" ] && return 0
    alive "$h" || break
    sleep 0.2
  done
  tail -n 20 "$LAB_DIR/$h/shoald.log" >&2
  die "$h: shoald did not open $LAB_DIR/$h/control.sock (log: $LAB_DIR/$h/shoald.log)"
}

kill_host() { # hN: SIGKILL shoald and anything else in the namespace
  local p
  p=$(pid_of "$1")
  [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
  rm -f "$LAB_DIR/$1/shoald.pid"
  for _ in $(seq 50); do
    p=$(ip netns pids "$P-$1" 2>/dev/null || true)
    [ -z "$p" ] && return 0
    # shellcheck disable=SC2086
    kill -9 $p 2>/dev/null || true
    sleep 0.1
  done
  echo "lab.sh: processes left in $P-$1: $p" >&2
}

clean_containerd() { # containerd namespace
  local ns=$1 c="ctr -n $1" ids sn
  command -v ctr >/dev/null || return 0
  grep -qx "$ns" <<<"$(ctr namespaces ls -q 2>/dev/null)" || return 0
  for _ in $(seq 10); do
    for ids in $($c tasks ls -q 2>/dev/null); do $c tasks kill -a -s SIGKILL "$ids" >/dev/null 2>&1; $c tasks rm -f "$ids" >/dev/null 2>&1; done
    ids=$($c containers ls -q 2>/dev/null); [ -z "$ids" ] || $c containers rm $ids >/dev/null 2>&1 || true
    ids=$($c images ls -q 2>/dev/null); [ -z "$ids" ] || $c images rm --sync $ids >/dev/null 2>&1 || true
    for sn in overlayfs native; do # leaves first: a snapshot that is nobody's parent
      for _ in $(seq 32); do
        ids=$($c snapshots --snapshotter $sn ls 2>/dev/null | awk 'NR>1 {k[$1]=1; if (NF==3) p[$2]=1} END {for (x in k) if (!(x in p)) print x}')
        [ -z "$ids" ] && break
        $c snapshots --snapshotter $sn rm $ids >/dev/null 2>&1 || break
      done
    done
    ids=$($c leases ls -q 2>/dev/null); [ -z "$ids" ] || $c leases rm $ids >/dev/null 2>&1 || true
    ids=$($c content ls -q 2>/dev/null); [ -z "$ids" ] || $c content rm $ids >/dev/null 2>&1 || true
    ctr namespaces rm "$ns" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "lab.sh: could not empty containerd namespace $ns: $(ctr namespaces rm "$ns" 2>&1)" >&2
}

partition() { # hN: drop at hN what comes from the other hosts, and at them what comes from hN
  local h=$1 o others=""
  for o in $(hosts); do [ "$o" != "$h" ] && others="$others${others:+, }$NET.$((${o#h} + 10))"; done
  [ -n "$others" ] || return 0
  drops "$h" "$others"
  for o in $(hosts); do [ "$o" != "$h" ] && drops "$o" "$NET.$((${h#h} + 10))"; done
}

drops() { # hN "addr, addr": replace hN's drop table
  inns "$1" nft -f - <<EOF
table inet shoal_lab
delete table inet shoal_lab
table inet shoal_lab {
	chain drops {
		type filter hook prerouting priority -400; policy accept;
		ip saddr { $2 } drop
	}
}
EOF
}

heal() { # hN: remove hN's partition (all drop tables of the lab)
  local o
  for o in $(hosts); do
    printf 'table inet shoal_lab\ndelete table inet shoal_lab\n' | inns "$o" nft -f -
  done
}

status() {
  local h p addr
  if [ -z "$(hosts)" ]; then echo "no lab (bridge $P-br: $(ip -br link show $P-br 2>/dev/null || echo absent))"; return 0; fi
  printf '%-4s %-17s %-22s %s\n' HOST ADDRESS SHOALD "CONTROL SOCKET"
  for h in $(hosts); do
    addr=$(ip -n "$P-$h" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')
    p=$(pid_of "$h")
    if alive "$h"; then p="pid $p"; else p="not running"; fi
    grep -q shoal_lab <<<"$(inns "$h" nft list tables 2>/dev/null)" && p="$p, drops on"
    printf '%-4s %-17s %-22s %s\n' "$h" "${addr%/24}:$PORT" "$p" "$LAB_DIR/$h/control.sock"
  done
}

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

up() {
  local n=${1:-3} i h
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 50 ] || die "up: N must be 1..50"
  [ -x "$SHOALD" ] || die "no shoald at $SHOALD: run 'go build -o bin/ ./cmd/...' first (or set SHOALD)"
  [ -e /sys/class/net/$P-br ] && die "a lab is already up; run '$0 down' first"
  grep -qF "$NET." <<<"$(ip -4 route show table all)" && die "$NET.0/24 is in use by a route here; set LAB_SUBNET"
  mkdir -p "$LAB_DIR"
  containerd_up
  ip link add "$P-br" type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0
  ip link set "$P-br" addrgenmode none
  ip link set "$P-br" up
  add_ns out "$NET.2"
  for i in $(seq "$n"); do add_ns "h$i" "$NET.$((i + 10))"; done
  for i in $(seq "$n"); do start_host "h$i"; done
  echo "lab up: $n hosts on $NET.0/24 (addresses exist only inside the lab's namespaces); logs in $LAB_DIR/hN/shoald.log"
  echo
  status
  echo
  echo "Try:"
  echo "  $SHOAL -H unix://$LAB_DIR/h1/control.sock swarm init --advertise-addr $NET.11:$PORT"
  echo "  $SHOAL -H unix://$LAB_DIR/h1/control.sock swarm join-token manager -q"
  for i in $(seq 2 "$n"); do
    echo "  $SHOAL -H unix://$LAB_DIR/h$i/control.sock swarm join --token TOKEN --advertise-addr $NET.$((i + 10)):$PORT $NET.11:$PORT"
  done
  echo "  $SHOAL -H unix://$LAB_DIR/h1/control.sock node ls"
  echo "  $0 kill h1 | start h1 | partition h1 | heal h1 | exec h2 ip addr | down"
  echo "Images: the hosts cannot reach 127.0.0.1 of this machine; serve a registry inside the lab instead, e.g."
  echo "  $0 exec out docker-registry serve CONFIG   (listening on 0.0.0.0:5000, images as $NET.2:5000/NAME:TAG,"
  echo "  with SHOALD_ARGS='--insecure-registry $NET.2:5000' at up)"
}

down() {
  local h
  for h in $(hosts) out; do kill_host "$h"; done
  for h in $(hosts); do clean_containerd "lab-$P-$h"; done
  for h in $(hosts) out; do ip netns del "$P-$h" 2>/dev/null || true; ip link del "$P-$h" 2>/dev/null || true; done
  ip link del "$P-br" 2>/dev/null || true
  rm -rf "$LAB_DIR"
  local left
  left=$( (ls /run/netns 2>/dev/null; ls /sys/class/net) | grep -E "^$P-(h[0-9]+|out|br)$" || true)
  [ -z "$left" ] || die "still present: $left"
  echo "lab down"
}

host_arg() { [[ ${1:-} =~ ^h[0-9]+$ ]] && [ -e "/run/netns/$P-$1" ] || die "no host '${1:-}' (have: $(hosts | tr '\n' ' '))"; }

[ $# -ge 1 ] || usage
cmd=$1; shift
case $cmd in
  up) need; up "$@" ;;
  down) need; down ;;
  status) need; status ;;
  kill) need; host_arg "${1:-}"; kill_host "$1"; echo "$1 killed" ;;
  start) need; host_arg "${1:-}"; start_host "$1"; echo "$1 started (pid $(pid_of "$1"))" ;;
  partition) need; host_arg "${1:-}"; partition "$1"; echo "$1 cut off from the other hosts" ;;
  heal) need; host_arg "${1:-}"; heal; echo "partitions removed" ;;
  exec) need; [ "${1:-}" = out ] || host_arg "${1:-}"; h=$1; shift; [ $# -ge 1 ] || die "exec: no command"; inns "$h" "$@" ;;
  *) usage ;;
esac
