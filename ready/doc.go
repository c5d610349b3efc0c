// Package ready answers "can this instance require IMDSv2 now, and if not, what must change
// first?" for `imdsv2 ready` and the demo.
//
// It combines four sources into a Report:
//   - the auditor's aggregate (audit.Summary), from a live audit (StartLive: the BPF agent
//     attached to a cgroup for a while) or from a running agent's state file (ReadState):
//     IMDSv1 callers, token requests that went unanswered (the hop-limit victims) or were
//     refused, and the hop limit token answers arrived with;
//   - an Observer on the live event stream, which notes what the aggregate does not keep:
//     whether a caller's socket came from another network namespace (a container behind a
//     bridge), IPv6 endpoint use, and token-answer TTLs split by namespace;
//   - the host's container networking (InspectHost: bridges, veths, CNI configurations);
//   - the scan of installed software (package scan).
//
// Evaluate turns them into a verdict: READY, NOT READY with every reason naming the
// process or file and its fix, or UNDECIDED with why (not on EC2, IMDS disabled, no audit).
// The report carries the next steps with the instance's id filled in: the
// modify-instance-metadata-options and AWSSupport-ConfigureEC2Metadata commands with the
// recommended hop limit, and what to watch afterwards. Its JSON field names are stable.
package ready
