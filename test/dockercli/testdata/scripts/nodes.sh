#!/usr/bin/env bash
# Usage: nodes.sh
# Collects node hostnames and roles, and this node's address, as
# inventory scripts do.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }

lines=$(docker node ls --format '{{.Hostname}} {{.ManagerStatus}}')
[ "$(echo "$lines" | wc -l)" -eq 1 ] || fail "node ls: $lines"
host=$(hostname)
[ "$lines" = "$host Leader" ] || fail "node ls: '$lines', want '$host Leader'"
echo "nodes: 1 leader"

addr=$(docker node inspect self --format '{{.Status.Addr}}')
[[ "$addr" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "Status.Addr: $addr"
role=$(docker node inspect self | jq -r '.[0].Spec.Role')
[ "$role" = manager ] || fail "role: $role"
leader=$(docker node inspect self | jq -r '.[0].ManagerStatus.Leader')
[ "$leader" = true ] || fail "leader: $leader"
id=$(docker node inspect self | jq -r '.[0].ID')
[ "$(docker node ls -q --filter role=manager)" = "$id" ] || fail "node ls -q --filter role=manager"
arch=$(docker node inspect self --format '{{.Description.Platform.Architecture}}')
[ "$arch" = "$(uname -m)" ] || fail "architecture: $arch, uname -m says $(uname -m)"
root=$(docker node inspect self | jq -r '.[0].Description.TLSInfo.TrustRoot')
[[ "$root" == "-----BEGIN CERTIFICATE-----"* ]] || fail "TLSInfo.TrustRoot: $root"
echo "self: manager, leader, $arch"
echo PASS
