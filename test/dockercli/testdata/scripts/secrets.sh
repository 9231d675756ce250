#!/usr/bin/env bash
# Usage: secrets.sh NAME
# Creates a secret, finds its ID by name with jq and with ls filters,
# reads its labels, removes it.
set -euo pipefail
name=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

created=$(printf 'hunter2' | docker secret create --label owner=ops "$name" -)
id=$(docker secret inspect "$name" | jq -r '.[0].ID')
[ "$id" = "$created" ] || fail "inspect ID $id, create printed $created"
[ "$(docker secret ls -q --filter "name=$name")" = "$id" ] || fail "secret ls -q --filter name="
byname=$(docker secret ls --format '{{.ID}} {{.Name}}' | awk -v n="$name" '$2 == n {print $1}')
[ "$byname" = "$id" ] || fail "ls --format: $byname"
owner=$(docker secret inspect "$name" | jq -r '.[0].Spec.Labels.owner')
[ "$owner" = ops ] || fail "label owner: $owner"
data=$(docker secret inspect "$name" | jq -r '.[0].Spec.Data // "none"')
[ "$data" = none ] || fail "a secret's data is shown: $data"
echo "secret: found by name, labelled"
docker secret rm "$name" >/dev/null
[ -z "$(docker secret ls -q --filter "name=$name")" ] || fail "the secret is still listed"
echo PASS
