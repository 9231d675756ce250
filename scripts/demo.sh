#!/usr/bin/env bash
# The shoal demo: a single-node swarm on this machine running the example
# application, shown working. `demo.sh up` (make demo) starts it;
# `demo.sh down` (make demo-down) removes everything it started.
#
# What it runs, all on loopback:
#   - Debian's docker-registry on 127.0.0.1:5000 (unless a registry already
#     answers there), holding the images shoal builds itself;
#   - one shoald (data in .demo/, control socket .demo/shoal.sock, cluster
#     API 127.0.0.1:4242, containerd namespace shoal-demo, bridge shdemo0);
#   - the example stack examples/app/app.yml when present, else a 3-replica
#     whoami service.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
SOCK=$DEMO/shoal.sock
NS=shoal-demo
BRIDGE=shdemo0
REG=127.0.0.1:5000
METRICS=127.0.0.1:9323
SHOAL=("$ROOT/bin/shoal" -H "unix://$SOCK")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

registry_up() {
  if curl -fsS "http://$REG/v2/" >/dev/null 2>&1; then
    echo "using the registry already answering on $REG"
    return
  fi
  mkdir -p "$DEMO/registry"
  cat >"$DEMO/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $DEMO/registry
  delete:
    enabled: true
http:
  addr: $REG
EOF
  nohup docker-registry serve "$DEMO/registry.yml" >"$DEMO/registry.log" 2>&1 &
  echo $! >"$DEMO/registry.pid"
  for _ in $(seq 50); do curl -fsS "http://$REG/v2/" >/dev/null 2>&1 && return; sleep 0.2; done
  echo "the registry did not start; see $DEMO/registry.log" >&2
  exit 1
}

shoald_up() {
  if [ -f "$DEMO/shoald.pid" ] && kill -0 "$(cat "$DEMO/shoald.pid")" 2>/dev/null; then
    echo "shoald already running (pid $(cat "$DEMO/shoald.pid"))"
    return
  fi
  nohup "$ROOT/bin/shoald" --data-dir "$DEMO/data" --control-socket "$SOCK" \
    --listen-addr 127.0.0.1:4242 --advertise-addr 127.0.0.1:4242 \
    --containerd-namespace "$NS" --bridge "$BRIDGE" --insecure-registry "$REG" \
    --metrics-addr "$METRICS" \
    >"$DEMO/shoald.log" 2>&1 &
  echo $! >"$DEMO/shoald.pid"
  for _ in $(seq 100); do "${SHOAL[@]}" info >/dev/null 2>&1 && return; sleep 0.1; done
  echo "shoald did not start; see $DEMO/shoald.log" >&2
  exit 1
}

up() {
  mkdir -p "$DEMO"
  say "registry"
  registry_up
  say "building and pushing the demo images"
  "$ROOT/bin/shoal-imagebuild" --registry "$REG" --insecure busybox whoami
  say "starting shoald"
  shoald_up
  if ! "${SHOAL[@]}" info --format '{{.state}}' 2>/dev/null | grep -qx ACTIVE; then
    say "shoal swarm init"
    "${SHOAL[@]}" swarm init --advertise-addr 127.0.0.1:4242
  fi
  local svc=web
  if [ -f examples/app/app.yml ] && "${SHOAL[@]}" stack --help >/dev/null 2>&1; then
    say "shoal stack deploy -c examples/app/app.yml app"
    (cd examples/app && "${SHOAL[@]}" stack deploy -c app.yml app)
    svc=app_web
    say "shoal stack services app"
    "${SHOAL[@]}" stack services app
  else
    say "shoal service create --name web --replicas 3 $REG/shoal/whoami:latest"
    "${SHOAL[@]}" service inspect web >/dev/null 2>&1 ||
      "${SHOAL[@]}" service create --name web --replicas 3 --env 'TASK_NAME={{.Task.Name}}' "$REG/shoal/whoami:latest"
  fi
  say "shoal service ls"
  "${SHOAL[@]}" service ls
  say "shoal service ps $svc"
  "${SHOAL[@]}" service ps "$svc"
  if [ "$svc" = app_web ]; then
    say "the worker reaches web by name over the overlay (shoal service logs app_worker)"
    # The worker asks http://web/ every 3 s: the stack's alias "web" resolves at 127.0.0.11 in its
    # container to web's VIP on the "back" overlay, and the VIP spreads the requests over the replicas.
    local seen=""
    for _ in $(seq 60); do
      seen=$("${SHOAL[@]}" service logs --raw app_worker 2>/dev/null | grep -c 'worker line.*hostname:' || true)
      [ "${seen:-0}" -ge 4 ] && break
      sleep 1
    done
    "${SHOAL[@]}" service logs --tail 4 app_worker 2>/dev/null || true
    [ "${seen:-0}" -ge 1 ] || echo "(the worker has not reached web yet: see ./bin/shoal -H unix://$SOCK service ps app_worker)"
    say "the routing mesh: curl 127.0.0.1:8080 (web publishes 8080:80), answered by the replicas in turn"
    for _ in $(seq 50); do curl -fsS --max-time 2 http://127.0.0.1:8080/ >/dev/null 2>&1 && break; sleep 0.2; done
    for i in 1 2 3 4 5 6; do
      printf 'request %d: ' "$i"
      curl -fsS --max-time 5 http://127.0.0.1:8080/ | head -n 1 || echo "(no answer)"
    done
  else
    say "one HTTP answer from each replica"
    for _ in $(seq 50); do
      addrs=$("${SHOAL[@]}" service ps -f desired-state=running --format '{{.Addresses}}' "$svc" | grep -v '^$' || true)
      [ "$(echo "$addrs" | grep -c .)" -ge 1 ] && break
      sleep 0.2
    done
    for a in $addrs; do
      echo "--- http://$a/"
      curl -fsS --max-time 5 "http://$a/" || echo "(no answer from $a)"
    done
  fi
  say "shoal stats --no-stream (every running task's CPU, memory and I/O)"
  "${SHOAL[@]}" stats --no-stream || true
  say "metrics: curl -s http://$METRICS/metrics | grep ^swarm_manager_tasks_total"
  curl -fsS --max-time 5 "http://$METRICS/metrics" | grep '^swarm_manager_tasks_total{state="running"}' || true
  cat <<EOF

The demo runs. Talk to it with:
    ./bin/shoal -H unix://$SOCK service ls
    ./bin/shoal -H unix://$SOCK service logs -f $svc
    export SHOAL_HOST=unix://$SOCK    # then just: ./bin/shoal node ls
    ./bin/shoal -H unix://$SOCK stats
    curl http://$METRICS/metrics      # Prometheus; also /healthz and /readyz
$(dash_line)
Stop it and remove everything it started with:
    make demo-down
EOF
}

# dash_line tells how to open the web dashboard when shoald serves it (its
# default address may be taken by another shoald on this machine).
dash_line() {
  local tok
  if grep -q 'dashboard: serving' "$DEMO/shoald.log" 2>/dev/null && tok=$(cat "$DEMO/data/dashboard-token" 2>/dev/null); then
    echo "    web dashboard: http://127.0.0.1:4243/?token=$tok"
  fi
}

down() {
  if [ -f "$DEMO/shoald.pid" ]; then
    kill "$(cat "$DEMO/shoald.pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$DEMO/shoald.pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$DEMO/shoald.pid")" 2>/dev/null || true
  fi
  # The containers outlive shoald by design; remove them and the namespace.
  if ctr namespaces ls -q 2>/dev/null | grep -qx "$NS"; then
    for id in $(ctr -n "$NS" tasks ls -q 2>/dev/null); do ctr -n "$NS" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $(ctr -n "$NS" tasks ls -q 2>/dev/null); do ctr -n "$NS" tasks rm -f "$id" >/dev/null 2>&1 || true; done
    ids=$(ctr -n "$NS" containers ls -q 2>/dev/null); [ -z "$ids" ] || ctr -n "$NS" containers rm $ids >/dev/null 2>&1 || true
    ids=$(ctr -n "$NS" images ls -q 2>/dev/null); [ -z "$ids" ] || ctr -n "$NS" images rm --sync $ids >/dev/null 2>&1 || true
    ctr namespaces rm "$NS" >/dev/null 2>&1 || true
  fi
  # Task network namespaces are bind-mounted under the data directory.
  if [ -d "$DEMO" ]; then
    awk -v d="$DEMO" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  if [ -d "/sys/class/net/$BRIDGE" ]; then
    for p in /sys/class/net/$BRIDGE/brif/*; do [ -e "$p" ] && ip link del "$(basename "$p")" 2>/dev/null || true; done
    ip link del "$BRIDGE" 2>/dev/null || true
  fi
  nft delete table ip "shoal-egress-$BRIDGE" 2>/dev/null || true
  nft delete table ip shoal-ingress 2>/dev/null || true  # the routing mesh of the demo node
  if [ -f "$DEMO/registry.pid" ]; then
    kill "$(cat "$DEMO/registry.pid")" 2>/dev/null || true
  fi
  rm -rf "$DEMO"
  echo "demo removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
