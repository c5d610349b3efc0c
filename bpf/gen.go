package bpf

// The BPF objects and their Go bindings (imds_x86_bpfel.* and imds_arm64_bpfel.*) are generated
// from imds.c and committed, so that building this package needs no C compiler. Regenerate with
// `make generate` (which pins Debian's clang 14) and check with `make generate-check`.
//
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type event imds imds.c -- -I./include -O2 -g -Wall -Werror
