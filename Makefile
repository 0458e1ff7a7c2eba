# dnsfront — see README.md. `make run` serves examples/dev.yaml; `make test` is what CI runs.
GO      ?= go
BIN     := bin/dnsfront
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/dnsfront/dnsfront/internal/server.Version=$(VERSION)
# Packages whose tests run under the race detector (all of them: every package has
# goroutines or is driven by ones that do).
RACE_PKGS := ./...
# staticcheck and its version: .ci/run installs this one.
STATICCHECK         ?= staticcheck
STATICCHECK_VERSION := v0.8.2

.PHONY: build run test test-short bench bench-compare bench-rules lint vet staticcheck fmt clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dnsfront

run: build
	./$(BIN) serve --config examples/dev.yaml

test: lint
	$(GO) test -race -timeout 12m -count=1 -parallel 4 $(RACE_PKGS)

test-short:
	$(GO) test -short -count=1 ./...

bench: build
	./scripts/bench/run.sh

bench-compare: build
	./scripts/bench/compare.sh

# bench-rules: Do53 UDP throughput with 100 query rules and dynamic rules against none.
bench-rules: build
	./scripts/bench/rules.sh

# lint: gofmt, go vet, a tidy go.mod (direct dependencies not marked indirect), staticcheck.
lint: vet staticcheck

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

# staticcheck: unused code, deprecated APIs, suspicious constructs.
staticcheck:
	@command -v $(STATICCHECK) >/dev/null || { echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)"; exit 1; }
	$(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin state
