// Package imdsfacts holds, once, the facts about IMDS that several parts of
// this module state: where the service answers, which release of each AWS SDK
// first can use IMDSv2 and how versions compare, and the commands that require
// IMDSv2 on an instance. Write such a fact here, never a copy of it elsewhere:
// copies drift (the auditor's and the scan's version comparators once
// disagreed on "2.0.0-preview" and on a leading "v").
//
// It imports only the standard library, because package imds, which must stay
// standard-library-only, imports it.
//
// # Version order
//
// ParseVersion and Version.Compare order versions the way the SDKs'
// ecosystems (semver, PEP 440, Maven, Go modules, .NET) mostly agree on:
//
//   - A leading "v" or "V" is ignored: v1.25.38 == 1.25.38.
//   - The numeric components compare as numbers, of any length and without
//     overflow: 1.11.1000 > 1.11.678, 007.1 == 7.1.
//   - Missing components are 0: 1.13 == 1.13.0. Any number of components, 1
//     to 8, compares component by component, so the four-part versions of
//     .NET and PowerShell work like the others: 3.3.634.1 > 3.3.634 ==
//     3.3.634.0, 4.0.1.0 == 4.0.1.
//   - A suffix makes a pre-release, lower than its release and higher than
//     the release before: 2.0.0-preview < 2.0.0, 1.13.25rc1 < 1.13.25,
//     2.10.21-SNAPSHOT < 2.10.21, and a Go pseudo-version
//     v1.25.38-0.2019...-abcdef < v1.25.38. Pre-releases of the same release
//     compare their suffixes as semver does (numbers by value and before
//     words, words case-insensitively): rc9 < rc10, alpha < alpha.1 < beta.
//     For "is this older than the minimum" this errs towards reporting: a
//     suffixed build of exactly the minimum counts as older.
//   - Exceptions to the suffix rule: PEP 440 ".postN" sorts after its release;
//     Maven's ".RELEASE", ".Final" and ".GA" are the release; build metadata
//     after "+" (semver, PEP 440 local versions, Go's +incompatible) is ignored.
//   - Anything else (empty, other characters, more than 8 components, longer
//     than MaxVersionLen) is not a version: OlderThan then gives no verdict,
//     and callers report the version as unknown instead of guessing.
package imdsfacts
