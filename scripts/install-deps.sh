#!/usr/bin/env bash
# Installs and starts what shoal needs on a Debian machine: containerd and
# runc (the runtime), protoc and the well-known .proto files (make proto and
# the generated-code check), gcc (cgo for the race detector), docker-registry (the demo's
# registry), busybox-static (the test and demo images), nftables and
# iproute2 (the lab), skopeo/umoci and gawk (the shared smoke checks),
# iperf3 (the overlay and mesh benchmarks), wrk (the mesh benchmark), socat and conntrack (the networking
# reference lab and debugging), python3-docker (docker-py, a client of the
# Engine API test, test/dockercli), docker.io (Debian's docker 20.10 CLI,
# the second client test/dockercli runs; its dockerd is never started) and
# prometheus (its dockerswarm_sd_configs read the Engine API in
# test/dockercli; the package's service is not started either). The docker CLI 28 that test/dockercli also
# runs is not a Debian package: build it with
# `go build -o /usr/local/bin/docker github.com/docker/cli/cmd/docker` at
# v28.2.2+incompatible. Idempotent:
# installs only what is missing, starts containerd only if it does not
# answer. Must run as root.
#
#   scripts/install-deps.sh --bench-etcd   # only etcd-server, the peer of
#                                          # scripts/bench-etcd.sh (make bench-etcd)
set -euo pipefail

# install_nostart PACKAGE...: installs packages whose postinst would start a
# daemon shoal must not have running, with a policy-rc.d that refuses every
# start.
install_nostart() {
  [ "$(id -u)" = 0 ] || { echo "install-deps: need root to install: $*" >&2; exit 1; }
  echo "install-deps: installing $* (their services are not started)"
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d made_policy= rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# install-deps (shoal): start no service while installing\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    made_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
  [ -z "$made_policy" ] || rm -f "$policy"
  [ "$rc" = 0 ] || { echo "install-deps: apt-get install $* failed" >&2; exit 1; }
}

# etcd-server for the raft benchmark only: scripts/bench-etcd.sh runs its
# own members on loopback; the Debian service is never started.
if [ "${1:-}" = --bench-etcd ]; then
  if [ ! -x /usr/bin/etcd ]; then
    [ "$(id -u)" = 0 ] && apt-get update -qq
    install_nostart etcd-server
  fi
  [ -x /usr/bin/etcd ] || { echo "install-deps: /usr/bin/etcd is still missing after installing etcd-server" >&2; exit 1; }
  exit 0
fi

need=()
have() { command -v "$1" >/dev/null 2>&1; }
# file PATH PACKAGE: the package that provides a file the build or the
# tests read (a command alone is not enough: protoc without the well-known
# .proto files fails on a machine where the package was never installed).
file() { [ -e "$1" ] || need+=("$2"); }
have containerd || need+=(containerd)
have containerd-shim-runc-v2 || need+=(containerd)
have runc || need+=(runc)
have protoc || need+=(protobuf-compiler)
file /usr/include/google/protobuf/duration.proto libprotobuf-dev
file /usr/include/google/protobuf/timestamp.proto libprotobuf-dev
have gcc || need+=(gcc) # cgo, which the race detector (make test) needs
have docker-registry || need+=(docker-registry)
file /bin/busybox busybox-static
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
have nft || need+=(nftables)
have ip || need+=(iproute2)
have skopeo || need+=(skopeo)
have umoci || need+=(umoci)
have curl || need+=(curl)
have nsenter || need+=(util-linux)
have setpriv || need+=(util-linux)
have iperf3 || need+=(iperf3)       # overlay throughput benchmark
have wrk || need+=(wrk)             # mesh requests/s benchmark
have socat || need+=(socat)         # the networking reference lab (shared/reference/networking/lab.sh)
have conntrack || need+=(conntrack) # looking at VIP flows by hand (docs/architecture.md)
/usr/bin/python3 -c 'import docker' >/dev/null 2>&1 || need+=(python3-docker) # docker-py (test/dockercli)
[ -x /usr/bin/chromium ] || need+=(chromium) # headless browser of the dashboard's tests (chromedp)
[ -x /usr/bin/jq ] || need+=(jq) # the docker-style scripts of test/dockercli read inspect JSON with jq
# Packages whose postinst would start a daemon shoal must not have running
# (dockerd would take over iptables and containerd's namespace "moby";
# prometheus would scrape itself on :9090): installed with a policy-rc.d
# that refuses every start.
nostart=()
/usr/bin/docker --version 2>/dev/null | grep -q '^Docker version 20\.10\.' || nostart+=(docker.io)
[ -x /usr/bin/prometheus ] || nostart+=(prometheus)
# The shared smoke checks' awk uses ERE intervals ("[a-z0-9]{12}"), which
# Debian's default mawk 1.3.4-20200120 does not know: with it every line
# matches as a failure. gawk takes over /usr/bin/awk through alternatives.
dpkg -s gawk >/dev/null 2>&1 || need+=(gawk)
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u | sed '/^$/d')
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: need root to install: ${need[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ${#nostart[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "install-deps: need root to install: ${nostart[*]}" >&2; exit 1; }
  [ ${#need[@]} -gt 0 ] || apt-get update -qq
  install_nostart "${nostart[@]}"
fi
if pgrep -x dockerd >/dev/null; then
  echo "install-deps: a dockerd is running: shoal's tests and demo need it stopped (it owns iptables and containerd namespace moby)" >&2
  exit 1
fi

# containerd: start it unless it answers.
sock=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
if ! ctr --address "$sock" version >/dev/null 2>&1; then
  echo "install-deps: starting containerd"
  mkdir -p /var/log
  nohup containerd >/var/log/shoal-containerd.log 2>&1 &
  for _ in $(seq 100); do
    ctr --address "$sock" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  ctr --address "$sock" version >/dev/null 2>&1 || { echo "install-deps: containerd did not start; see /var/log/shoal-containerd.log" >&2; exit 1; }
fi

# What the tests run must now be there: say which command is missing.
for c in iperf3 wrk socat conntrack gawk; do
  have "$c" || { echo "install-deps: $c is still missing after installing its package" >&2; exit 1; }
done

/usr/bin/docker --version 2>/dev/null | grep -q '^Docker version 20\.10\.' || { echo "install-deps: /usr/bin/docker is not the docker 20.10 CLI after installing docker.io" >&2; exit 1; }
[ -x /usr/bin/prometheus ] || { echo "install-deps: /usr/bin/prometheus is still missing after installing prometheus" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "install-deps: /usr/bin/chromium is still missing after installing chromium" >&2; exit 1; }
[ -x /usr/bin/jq ] || { echo "install-deps: /usr/bin/jq is still missing after installing jq" >&2; exit 1; }
/usr/bin/python3 -c 'import docker' >/dev/null 2>&1 || { echo "install-deps: /usr/bin/python3 cannot import docker after installing python3-docker" >&2; exit 1; }

# What the build reads must now be there: say which file is missing.
for f in /usr/include/google/protobuf/duration.proto /usr/include/google/protobuf/timestamp.proto; do
  [ -e "$f" ] || { echo "install-deps: $f is still missing after installing libprotobuf-dev" >&2; exit 1; }
done
