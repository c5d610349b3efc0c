package bpf

// The BPF object and its Go bindings (imds_bpfel.o and imds_bpfel.go) are generated from imds.c
// and committed, so that building this package needs no C compiler. Regenerate with `make
// generate` (which pins Debian's clang 14) and check with `make generate-check`.
//
// One object serves every little-endian architecture (amd64 and arm64 among them): nothing in
// imds.c depends on the architecture (tracepoint arguments are an array of u64, task_struct is
// read through its BTF with CO-RE, no pt_regs), so the x86 and arm64 builds were byte for byte
// the same.
// The bindings are not limited to Linux, so that the limits in options.go come from imds.c's
// enums on every platform the package builds on (little-endian ones).
//
// The contract with imds.c is generated, never copied by hand: the record header and the
// identity in it (-type), and the enums of event kinds and flags, capture limits and default
// map sizes (imds.c keeps them in BTF through variables, whose types bpf2go generates).
//
//go:generate go tool bpf2go -target bpfel -type event -type identity imds imds.c -- -I./include -O2 -g -Wall -Werror
