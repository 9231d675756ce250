#!/usr/bin/env bash
# Usage: service_replicas.sh NAME IMAGE PORT
# Creates a service, waits until its running replicas equal the desired
# count, reads it back with jq and templates, updates it and waits for the
# update to complete, then removes it: what a deploy script does.
set -euo pipefail
name=$1 image=$2 port=$3
fail() { echo "FAIL: $*" >&2; exit 1; }

docker service create -d --name "$name" --replicas 2 --no-resolve-image \
  --label tier=front --publish "$port:80" "$image" sh -c 'sleep 3600' >/dev/null

# Wait until running = desired, the way people poll.
for i in $(seq 1 180); do
  replicas=$(docker service ls --filter "name=$name" --format '{{.Replicas}}')
  running=$(docker service ps "$name" --filter desired-state=running -q | wc -l)
  want=$(docker service inspect "$name" | jq '.[0].Spec.Mode.Replicated.Replicas')
  if [ "$replicas" = "$want/$want" ] && [ "$running" -eq "$want" ]; then break; fi
  [ "$i" -lt 180 ] || fail "$name did not converge: replicas $replicas, running $running, want $want"
  sleep 0.5
done
echo "replicas: $want"

ports=$(docker service inspect "$name" | jq -r '.[0].Endpoint.Ports[] | "\(.PublishedPort):\(.TargetPort)/\(.Protocol)"')
[ "$ports" = "$port:80/tcp" ] || fail "published ports: $ports"
echo "ports: ok"
tier=$(docker service inspect "$name" | jq -r '.[0].Spec.Labels.tier')
[ "$tier" = front ] || fail "label tier: $tier"
[ "$(docker service inspect --format '{{index .Spec.Labels "tier"}}' "$name")" = front ] || fail "index template"
[ "$(docker service inspect --format '{{.Spec.Name}}' "$name")" = "$name" ] || fail "name template"
mode=$(docker service inspect "$name" | jq -r '.[0].Spec.EndpointSpec.Mode')
[ "$mode" = vip ] || fail "endpoint mode: $mode"
echo "labels: ok"

docker service update -d --env-add STEP=2 "$name" >/dev/null
for i in $(seq 1 180); do
  state=$(docker service inspect --format '{{.UpdateStatus.State}}' "$name")
  [ "$state" = completed ] && break
  [ "$i" -lt 180 ] || fail "the update did not complete: state $state"
  sleep 0.5
done
env=$(docker service inspect "$name" | jq -r '.[0].Spec.TaskTemplate.ContainerSpec.Env | join(",")')
[ "$env" = STEP=2 ] || fail "env after the update: $env"
prev=$(docker service inspect "$name" | jq -r '.[0].PreviousSpec.TaskTemplate.ContainerSpec.Env // [] | length')
[ "$prev" = 0 ] || fail "previous spec env: $prev"
echo "update: $state"

docker service rm "$name" >/dev/null
echo PASS
