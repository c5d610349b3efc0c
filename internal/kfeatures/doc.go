// Package kfeatures is where package bpf asks the kernel what it has: its release, this
// process's capabilities, and the BPF program types, attach types, map types and helpers the
// auditor's programs use. Tests put a fake kernel in its place (Fake, Without) to see what
// the command line says on a kernel that cannot be booted here, such as Amazon Linux 2's 4.14.
package kfeatures
