#!/usr/bin/env bash
# Installs and starts what shoal needs on a Debian machine: containerd and
# runc (the runtime), protoc (make proto), docker-registry (the demo's
# registry), busybox-static (the test and demo images), nftables and
# iproute2 (the lab), skopeo/umoci (the shared smoke checks). Idempotent:
# installs only what is missing, starts containerd only if it does not
# answer. Must run as root.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have containerd || need+=(containerd)
have runc || need+=(runc)
have protoc || need+=(protobuf-compiler)
have docker-registry || need+=(docker-registry)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
have nft || need+=(nftables)
have ip || need+=(iproute2)
have skopeo || need+=(skopeo)
have umoci || need+=(umoci)
have curl || need+=(curl)
have nsenter || need+=(util-linux)
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
