// Package audit is the user-space half of the auditor: it turns what the kernel reports about
// connections to the instance metadata service (an audit.Source of Events, from package bpf or
// from audit/replay in tests) into who calls IMDS and how.
//
// Each event goes once through one pipeline, each stage owning its state: reassembly of both
// directions of a connection (audit/reasm), one parse of each request and answer head
// (audit/httpreq), classification (IMDSv1 GET, IMDSv2 GET, token PUT, another cloud's probe,
// incomplete), attribution to a caller (process, command line, parent chain, user, container,
// systemd unit, from audit/proc; the SDK from its User-Agent or header shape, audit/sdk),
// aggregation per caller, and the outputs: JSON lines, the table, Prometheus metrics and the
// state file. Token values and credentials are redacted where text enters the model, and
// control characters are escaped at each output's edge.
//
// What it decides, once: the class of every request, who made it, whether a token PUT went
// unanswered or was refused and what its caller did next, the hop limit token answers arrived
// with, and what the audit covered (Coverage: which cgroup, from which namespaces, for how
// long, with which gaps). The advice per caller (ReadyHints) comes from these facts; the
// readiness verdict built on them is package ready's.
//
// It needs no root: Auditor depends on small interfaces (Source, ProcessTable, a clock), so
// tests feed it recorded sessions and compare its text and JSON with golden files.
package audit
