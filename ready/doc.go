// Package ready answers "can this instance require IMDSv2 now, and if not, what must change
// first?" for `imdsv2 ready` and the demo.
//
// # The verdict invariant
//
// An operator acts on the answer across a fleet, and a wrong READY breaks production the
// moment IMDSv2 is enforced. So the verdict is decided in one place (decide, called by
// Evaluate), by this rule:
//
//   - READY only with positive evidence that the whole instance was watched (the root of the
//     host's cgroup2 hierarchy, by an agent that saw the host as the host), for at least the
//     minimum time (Input.MinWatch, default DefaultMinWatch), with exec tracing on, nothing
//     lost, nothing unclassified, no capture gap or unpaired answer, and that no tokenless
//     request to an AWS metadata path was counted anywhere.
//   - Anything IMDSv1 is NOT READY (exit 1): the audit's request counts decide, not only the
//     callers it could itemise. Token PUTs that got no answer or were refused, and installed
//     software too old for IMDSv2, are NOT READY too. NOT READY wins over every other outcome.
//   - Otherwise anything uncertain is UNDECIDED (exit 2), with every reason listed in
//     Report.Uncertain (coverage too thin or unknown, losses, unclassified requests, IMDS not
//     reachable, the agent in a container's namespaces without the host paths).
//
// A verdict about a cgroup subtree the operator named (Input.Scope, `--cgroup`) says so in
// its first line and in its JSON (scope), and is never presented as the instance's: a READY
// for a subtree carries no enforcement command.
//
// # Inputs
//
// Evaluate combines:
//   - the auditor's aggregate (audit.Summary) with its coverage record (audit.Coverage: every
//     span the agent watched, the gaps between them, how the agent ran), from a live audit
//     (package agent: the BPF programs attached to a cgroup for a while) or from a running agent's
//     state file (ReadState), so that a verdict read days later is judged on what was
//     actually watched;
//   - the host's container networking (InspectHost: bridges, veths, CNI configurations);
//   - the scan of installed software (package scan).
//
// The report carries the coverage block, the reasons (each naming the process or file and its
// fix), the uncertain points, warnings, and the next steps with the instance's id filled in:
// the modify-instance-metadata-options and AWSSupport-ConfigureEC2Metadata commands with the
// recommended hop limit, and what to watch afterwards. Its JSON field names are stable and it
// carries a schema version (Schema).
package ready
