# imdsv2: the two commands a new machine needs are `make demo` (the main job) and `make test`.
# Both install nothing by themselves beyond Go modules; .ci/run shows the Debian packages used.

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := bin/imdsv2
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 5s
TESTTIMEOUT ?= 30m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build the static binary bin/imdsv2
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/imdsv2

.PHONY: demo
demo: build ## run the self-contained demo (root: builds private network namespaces)
	./$(BIN) demo

.PHONY: test
test: lint ## vet, format check, all tests with -race, a short fuzz pass (root runs the privileged tests; CI=true makes their skips failures)
	$(GO) test -race -count=1 -timeout $(TESTTIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz
	@if [ -f bpf/gen.go ]; then $(MAKE) --no-print-directory generate-check; fi

.PHONY: fuzz
fuzz: ## run every Fuzz target for FUZZTIME (default 5s) each
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

.PHONY: bench
bench: ## run the benchmarks (this client against the SDK and bare net/http, in one run)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

.PHONY: lint
lint: ## go vet and gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '_bpfe[lb]\.go$$' || true); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: generate
generate: ## regenerate the eBPF bindings (needs Debian's clang and llvm)
	$(GO) generate ./bpf/...

.PHONY: generate-check
generate-check: generate ## fail when the committed eBPF bindings differ from a fresh generate
	@git diff --exit-code --stat -- bpf/ || { echo "bpf bindings are stale: run make generate and commit"; exit 1; }

.PHONY: clean
clean: ## remove build output
	rm -rf bin
