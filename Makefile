# shoal: `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/shoal-project/shoal/version.GitCommit=$(VERSION)
BIN := bin
PROTO_TOOLS := .bin

.PHONY: all build deps test test-unit test-e2e lint proto bench demo demo-down lab-up lab-down clean

all: build

## deps: install (apt) and start what the tests and the demo need; idempotent
deps:
	@./scripts/install-deps.sh

## build: the binaries into ./bin
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The root tiers: real binaries, containerd, network namespaces; and the
# test images they run (building them compiles Go programs: minutes cold).
E2E_PKGS := ./test/e2e/ ./test/cluster/ ./test/lab/ ./test/images/ ./test/dockercli/

## test: the whole suite, with the real containerd and netns tests (as root);
## then the scale tests at full size (100,000 and 200,000 replicas on one and
## three in-process managers), which the race detector would make too slow.
## SHOAL_TEST_ROOT=1: a test that needs root or containerd fails, not skips.
test: deps lint
	SHOAL_TEST_ROOT=1 $(GO) test -race -count=1 -timeout 45m ./...
	$(GO) test -count=1 -timeout 30m -run 'TestHugeService' -v ./manager/

## test-unit: every package but the root tiers and test/images, as any user, without
## containerd (tests needing root or containerd skip, saying why), in -short
## mode (no full-size scale tests), without the race detector (its cold
## build alone takes minutes here; make test has it), without go vet (make
## lint runs it) and without DWARF in the test binaries (-ldflags=-w: faster
## links). Needs only Go. A module cache this user cannot read (root's,
## under a 0700 /root) would stop go before any test: then the tier uses a
## cache of its own, filled from the module proxy.
test-unit:
	@mc=$$($(GO) env GOMODCACHE); if ! ls "$$mc" >/dev/null 2>&1; then \
		export GOMODCACHE="$${TMPDIR:-/tmp}/shoal-gomod-$$(id -u)"; \
		echo "test-unit: $$mc is not readable by $$(id -un); using $$GOMODCACHE"; fi; \
	$(GO) test -short -vet=off -ldflags=-w -count=1 -timeout 10m $$($(GO) list ./... | grep -vE '/test/(e2e|cluster|lab|images|dockercli)$$')

## test-e2e: the root tiers (test/e2e, test/cluster, test/lab) and the test
## images, as root with containerd; nothing skips.
test-e2e: deps
	SHOAL_TEST_ROOT=1 $(GO) test -race -count=1 -timeout 45m $(E2E_PKGS)

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## proto: regenerate proto/*.pb.go with the pinned protoc plugins
proto:
	@command -v protoc >/dev/null || ./scripts/install-deps.sh
	$(GO) build -o $(PROTO_TOOLS)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	PATH=$(CURDIR)/$(PROTO_TOOLS):$$PATH protoc -I . -I /usr/include \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative proto/*.proto

## scale: the scale scenario of issue 13 (test/scale): 3 managers (each in a
## process of its own; SHOAL_SCALE_MANAGERS=inline: all in the test's process)
## and SHOAL_SCALE_NODES simulated nodes (default 1,000) running
## SHOAL_SCALE_TASKS tasks (default 100,000; 0: join and idle only) as one
## service or split among SHOAL_SCALE_SERVICES: create, a rolling update with
## SHOAL_SCALE_KILLS leader kills (default 1;
## SHOAL_SCALE_KILL_SPACING tasks updated apart), a drain of 10 % of the nodes,
## removal; prints a report per phase (wall, tasks/s, CPU, heap and RSS per
## manager; with inline managers the CPU by manager, fleet and harness from a
## CPU profile of the phase). Each
## phase is bounded by SHOAL_SCALE_PHASE_LIMIT (default 10m); the run fails
## when less than SHOAL_SCALE_MIN_AVAILABLE MiB (default 2048) of memory is
## available. SHOAL_SCALE_CPUPROFILE=phase:file[,...] keeps phases' profiles.
## SHOAL_SCALE_PHASES=create,failover,update,drain,remove adds "failover":
## SHOAL_SCALE_STEADY_KILLS (default 5) leader kills of the steady swarm, then
## the run fails if any running task was moved or stopped.
## SHOAL_SCALE_RAFT_TICK lengthens the managers' raft tick (as shoald's --raft-tick).
## The simulated nodes run in a child process of their own over loopback TCP
## (SHOAL_SCALE_FLEET=inline: in the inline managers' process; SHOAL_SCALE_FLEET_NICE
## lowers the child's priority).
## The issue's sizes (BENCHMARKS.md "Scale (issue 13)"):
##   make scale SHOAL_SCALE_NODES=10000 SHOAL_SCALE_TASKS=1000000 SHOAL_SCALE_KILLS=5
##   make scale SHOAL_SCALE_NODES=10000 SHOAL_SCALE_TASKS=1000000 SHOAL_SCALE_SERVICES=1000
SCALE_TIMEOUT ?= 120m
.PHONY: scale
scale:
	SHOAL_SCALE=1 $(GO) test -count=1 -timeout $(SCALE_TIMEOUT) -run 'TestScale$$' -v ./test/scale/

## chaos: the linearizability test (TestLinearizable, test/lab) at full length:
## concurrent clients read and compare-and-set through the control sockets of a
## 3-manager lab swarm of real shoald while the leader is killed with SIGKILL
## and restarted 100 times, cut off from the other managers 20 times and paused
## (SIGSTOP) 20 times; porcupine checks the whole history (root, containerd).
## SHOAL_CHAOS_KILLS, SHOAL_CHAOS_PARTITIONS and SHOAL_CHAOS_PAUSES set the
## counts (make test runs 10, 2 and 2). On a violation porcupine's HTML
## visualization and the history as text go to SHOAL_ARTIFACT_DIR (default
## $$TMPDIR/shoal-artifacts), named in the failure.
SHOAL_CHAOS_KILLS ?= 100
SHOAL_CHAOS_PARTITIONS ?= 20
SHOAL_CHAOS_PAUSES ?= 20
.PHONY: chaos
chaos: deps
	SHOAL_TEST_ROOT=1 SHOAL_CHAOS_KILLS=$(SHOAL_CHAOS_KILLS) SHOAL_CHAOS_PARTITIONS=$(SHOAL_CHAOS_PARTITIONS) \
		SHOAL_CHAOS_PAUSES=$(SHOAL_CHAOS_PAUSES) $(GO) test -race -count=1 -timeout 90m -run 'TestLinearizable$$' -v ./test/lab/

## bench: the benchmarks recorded in BENCHMARKS.md (the last three need root
## and containerd); takes about half an hour
bench: deps
	$(GO) test -run XXX -bench 'Fdatasync|ReplicatedWrites' -benchtime 5000x -count 1 ./raftstore/
	$(GO) test -run XXX -bench Schedule -benchtime 3x -count 3 ./scheduler/
	$(GO) test -run XXX -bench ViewUpdate -count 3 ./scheduler/
	GO=$(GO) ./scripts/bench-compare.sh
	$(GO) test -run XXX -bench CreateToRunning -benchtime 20x -count 1 ./worker/containerd/
	$(GO) test -run XXX -bench TaskStart -benchtime 5x -count 3 ./test/e2e/
	$(GO) test -run XXX -bench Overlay -benchtime 3x -count 1 -timeout 30m ./test/lab/

## bench-overlay: the overlay numbers of BENCHMARKS.md on a 3-host lab swarm
## (root, containerd, iperf3): TCP throughput against the underlay, VIP
## against direct connection setup, DNS latency, name propagation
.PHONY: bench-overlay
bench-overlay: deps
	$(GO) test -run XXX -bench Overlay -benchtime 3x -count 1 -timeout 30m -v ./test/lab/

## bench-mesh: the routing-mesh numbers of BENCHMARKS.md on a 3-host lab swarm
## (root, containerd, iperf3, wrk): throughput and requests/s through the mesh
## against direct, connection setup, rule update time (also with 1,000
## published services: about 15 minutes more)
.PHONY: bench-mesh
bench-mesh: deps
	SHOAL_TEST_ROOT=1 $(GO) test -run XXX -bench Mesh -benchtime 1x -count 1 -timeout 40m -v ./test/lab/

## bench-engine-api: the Engine API gateway numbers of BENCHMARKS.md: each
## call through the gateway against the same gRPC call with 1,000 services
## (in-process cluster), and `docker service ls` against `shoal service ls`
## of 1,000 services on a real shoald (root, containerd)
.PHONY: bench-engine-api
bench-engine-api: deps
	$(GO) test -run XXX -bench EngineAPIGateway -benchtime 200x -count 3 ./dockerapi/
	SHOAL_TEST_ROOT=1 $(GO) test -run XXX -bench ServiceLs -benchtime 15x -count 3 ./test/dockercli/

## test-overlay-long: the overlay acceptance test with the issue's full 300
## address-reuse cycles (make test runs 30)
.PHONY: test-overlay-long
test-overlay-long: deps
	SHOAL_TEST_ROOT=1 SHOAL_OVERLAY_CYCLES=300 $(GO) test -count=1 -timeout 40m -run 'TestOverlay$$' -v ./test/lab/

## bench-etcd: shoal's raft store and etcd 3.4 (Debian's etcd-server, installed
## here with its service never started; driven from module bench/etcd), same
## writes, same run, with the disk's fdatasync limits; prints the medians
.PHONY: bench-etcd
bench-etcd:
	./scripts/install-deps.sh --bench-etcd
	GO=$(GO) ./scripts/bench-etcd.sh

## bench-compare: shoal's scheduling loop and SwarmKit's scheduler (module
## bench/swarmkit), same cases, same run; prints the medians
.PHONY: bench-compare
bench-compare:
	GO=$(GO) ./scripts/bench-compare.sh

## demo: a running single-node cluster with the example service, shown working
demo: deps build
	@./scripts/demo.sh up

## demo-down: stop and remove everything the demo started
demo-down:
	@./scripts/demo.sh down

lab-up: build
	@./scripts/lab.sh up 3

lab-down:
	@./scripts/lab.sh down

clean:
	rm -rf $(BIN) $(PROTO_TOOLS)
