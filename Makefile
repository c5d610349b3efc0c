# imdsv2: the two commands a new machine needs are `make demo` (the main job) and `make test`
# (everything CI checks). Neither installs anything beyond Go modules; .ci/run lists the Debian
# packages CI installs first.

# `go` from PATH, else the standard install location (root's PATH often lacks it under sudo).
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOFMT ?= $(shell command -v gofmt 2>/dev/null || echo $(dir $(GO))gofmt)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := bin/imdsv2
LDFLAGS := -s -w -X main.version=$(VERSION)
# CI-friendly test flags: no cached results, the race detector, one overall time limit.
TESTFLAGS ?= -race -count=1 -timeout 30m
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can report its own
# deadline as a failure ("context deadline exceeded", no crasher) on a busy machine
# (golang/go#75804, fixed in Go 1.27). -timeout still bounds each target.
FUZZTIME ?= 3000x
FUZZTIMEOUT ?= 5m
# The committed eBPF objects were built with Debian 12's clang 14; `generate-check` compares
# against a build with the same compiler, since other versions emit different (equally valid) code.
BPF2GO_CC ?= $(shell command -v clang-14 2>/dev/null || echo clang)
BPF2GO_STRIP ?= $(shell command -v llvm-strip-14 2>/dev/null || echo llvm-strip)
export BPF2GO_CC BPF2GO_STRIP

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets (this is the default)
	@echo "Usage: make TARGET"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build the static binary bin/imdsv2 (CGO_ENABLED=0, -trimpath, version from git)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/imdsv2

.PHONY: demo
demo: build ## the main job: run the self-contained demo (root; private network namespaces, seconds)
	./$(BIN) demo

.PHONY: test
test: lint ## what CI runs: vet, gofmt check, all tests with -race, a short fuzz pass, generate-check
	$(GO) test $(TESTFLAGS) ./...
	@$(MAKE) --no-print-directory fuzz
	@# Hook for the eBPF part: the committed bindings must match a fresh `make generate`. It runs
	@# only where the compiler that made them exists, so a machine without clang can still test.
	@if [ -f bpf/gen.go ] && command -v "$(BPF2GO_CC)" >/dev/null; then \
		$(MAKE) --no-print-directory generate-check; \
	elif [ -n "$$CI" ]; then \
		echo "generate-check: $(BPF2GO_CC) not found (CI installs clang and llvm)"; exit 1; \
	else \
		echo "generate-check: skipped, $(BPF2GO_CC) not found"; \
	fi

.PHONY: fuzz
fuzz: ## run every Fuzz target for FUZZTIME (default 3000 inputs each)
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -timeout $(FUZZTIMEOUT) $$pkg; \
		done; \
	done

.PHONY: bench
bench: ## run every benchmark (the client against the SDK and bare net/http, among others)
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-cost
bench-cost: ## what each eBPF program costs per run over an empty one, kernel's accounting (root; ~10 s)
	$(GO) test -run '^$$' -bench Cost -count=1 ./bpf/

.PHONY: lint
lint: ## go vet and the gofmt check
	$(GO) vet ./...
	@out=$$($(GOFMT) -l . | grep -v '^\.git/' || true); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: generate
generate: ## regenerate the eBPF objects and Go bindings in bpf/ (needs clang and llvm)
	$(GO) generate ./bpf/...

.PHONY: generate-check
generate-check: ## fail when the committed eBPF bindings differ from a fresh generate
	@# Generate in a scratch copy of the module, so the check never changes the working tree.
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	tar --exclude=./.git --exclude=./bin -cf - . | tar -xf - -C "$$tmp"; \
	(cd "$$tmp" && $(GO) generate ./bpf/...); \
	stale=0; for f in bpf/*_bpfel.go bpf/*_bpfel.o; do \
		cmp -s "$$f" "$$tmp/$$f" || { echo "stale: $$f"; stale=1; }; \
	done; \
	if [ $$stale = 1 ]; then echo "the eBPF bindings are stale: run 'make generate' and commit the result"; exit 1; fi; \
	echo "generate-check: eBPF bindings match imds.c ($(BPF2GO_CC))"

# test-vm: the privileged tests, the tests of cmd/imdsv2 and `imdsv2 demo`, as root, inside a VM that
# boots one of Debian's cloud kernels under QEMU without KVM (TCG): no network device in the VM, the
# host's root shared read-only over virtiofs. VM_ARCH chooses amd64 (qemu-system-x86_64) or arm64
# (qemu-system-aarch64 -M virt: the kernel, test binaries and a root file system of arm64 Debian
# packages, built once and cached); VM_KERNEL the family: 6.1 (bookworm's linux-image-cloud-*, the
# family of Amazon Linux 2023), 5.10 (bullseye's, the family of Amazon Linux 2) or 6.12
# (bookworm-backports'). A private apt configuration in .cache/vm fetches them, and the packages are
# cached there (`make test-vm VM_ARCH=arm64 VM_KERNEL=5.10`). VM_PKGS empty = vm/vmcheck,
# internal/cgroup, bpf, internal/testbed, every other package whose tests call internal/privtest
# (the end-to-end auditor tests, cmd/imdsv2), audit/proc; minus VM_EXCLUDE. vm/run.sh documents
# every setting.
VM_PKGS ?=
VM_EXCLUDE ?= ./imds/
VM_NICE ?= 0
VM_KERNEL ?= 6.1
VM_ARCH ?= amd64
.PHONY: test-vm
test-vm: ## privileged tests + demo in a VM: VM_ARCH=amd64|arm64 VM_KERNEL=6.1|5.10|6.12 (root; QEMU without KVM: minutes)
	VM_ARCH='$(VM_ARCH)' VM_KERNEL='$(VM_KERNEL)' VM_PKGS='$(VM_PKGS)' VM_EXCLUDE='$(VM_EXCLUDE)' GO='$(GO)' nice -n $(VM_NICE) vm/run.sh

.PHONY: clean
clean: ## remove build output
	rm -rf bin
