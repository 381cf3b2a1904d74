# Hive build and test entry points. `make test` is what CI runs (.ci/run).
#
#   make build   bin/hive
#   make test    system packages, go vet, unit tests, then e2e tests
#   make unit    unit tests (every package but e2e)
#   make e2e     e2e tests (root; builds hive itself)
#   make bench   benchmarks (BENCHTIME=1s by default)
#   make lint    gofmt, go vet, staticcheck

GO        ?= go
BENCHTIME ?= 1s

# bash with pipefail, so a recipe that pipes keeps the failing exit code.
SHELL       := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# Every package but the e2e ones, which need root and run one at a time.
UNIT_PKGS = $$($(GO) list ./... | grep -v '/e2e\(/\|$$\)')

.PHONY: all build deps vet unit e2e test bench lint clean

all: build

# Static (no cgo): workers bind-mount the binary into containers to deliver
# env secrets (hive secret-exec), whatever libc the image has.
build:
	CGO_ENABLED=0 $(GO) build -o bin/hive ./cmd/hive

deps:
	scripts/install-deps.sh

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 $(UNIT_PKGS)

# -p 1: the e2e harness owns fixed names and addresses (hive-e2e-*,
# 198.18.0.0/24), so its packages must not run in parallel.
e2e: deps
	$(GO) test -count=1 -p 1 -timeout 30m -v ./e2e/...

# One recipe rather than prerequisites, so the order holds under make -j.
test:
	scripts/install-deps.sh
	$(GO) vet ./...
	$(GO) test -count=1 $(UNIT_PKGS)
	$(GO) test -count=1 -p 1 -timeout 30m -v ./e2e/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./...

lint:
	scripts/install-deps.sh --lint
	@unformatted=$$(gofmt -l .); \
	if [[ -n $$unformatted ]]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	"$$($(GO) env GOPATH)/bin/staticcheck" ./...

clean:
	rm -rf bin
