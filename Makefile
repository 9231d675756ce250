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

## test: the whole suite, with the real containerd and netns tests (as root);
## then the scale tests at full size (100,000 and 200,000 replicas on one and
## three in-process managers), which the race detector would make too slow
test: deps lint
	$(GO) test -race -count=1 -timeout 45m ./...
	$(GO) test -count=1 -timeout 30m -run 'TestHugeService' -v ./manager/

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

## bench: the benchmarks recorded in BENCHMARKS.md (the last three need root
## and containerd); takes about half an hour
bench: deps
	$(GO) test -run XXX -bench 'Fdatasync|ReplicatedWrites' -benchtime 5000x -count 1 ./raftstore/
	$(GO) test -run XXX -bench Schedule -benchtime 3x -count 3 ./scheduler/
	$(GO) test -run XXX -bench ViewUpdate -count 3 ./scheduler/
	GO=$(GO) ./scripts/bench-compare.sh
	$(GO) test -run XXX -bench CreateToRunning -benchtime 20x -count 1 ./worker/containerd/
	$(GO) test -run XXX -bench TaskStart -benchtime 5x -count 3 ./test/e2e/

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
