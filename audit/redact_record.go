package audit

import "slices"

// scrubKnown applies the remembered tokens once more to the text of r as it
// leaves for the aggregate and the sinks. Its text was redacted when it
// entered (onRequest, attribute, the exec record); a token first seen on the
// wire after that, on another connection or later on this one, is caught
// here before any output sees the record.
func (a *Auditor) scrubKnown(r *Record) {
	k := a.known
	r.Path = k.scrub(r.Path)
	r.UserAgent = k.scrub(r.UserAgent)
	r.Process, _ = scrubProcess(k, r.Process)
}

// scrubSummary applies the remembered tokens to a summary: a caller counted
// before a token it carries was first seen on the wire is clean in every
// summary made afterwards (state file, table, metrics, verdict). Its live
// record went out at the time and cannot be called back.
func (a *Auditor) scrubSummary(s *Summary) {
	k := a.known
	changed := false
	for i := range s.Callers {
		c := &s.Callers[i]
		var ch bool
		c.Process, ch = scrubProcess(k, c.Process)
		changed = changed || ch
		if ua := k.scrub(c.UserAgent); ua != c.UserAgent {
			c.UserAgent, changed = ua, true
		}
		if c.SDK != nil { // shared with records and other callers: copied on change
			if h, n := k.scrub(c.SDK.Headers), k.scrub(c.SDK.Name); h != c.SDK.Headers || n != c.SDK.Name {
				info := *c.SDK
				info.Headers, info.Name = h, n
				c.SDK, changed = &info, true
			}
		}
		for j := range c.Paths { // the summary's own copy
			if p := k.scrub(c.Paths[j].Path); p != c.Paths[j].Path {
				c.Paths[j].Path, changed = p, true
			}
		}
	}
	if changed {
		s.ReadyHints = readyHints(s)
	}
}

// scrubProcess applies the remembered tokens to the command lines and
// executables of p and its parents (a token has no business in an
// executable's path, but knowledge costs nothing to apply). The parent chain
// is copied on change: records and callers share it.
func scrubProcess(k *knownTokens, p Process) (Process, bool) {
	changed := false
	if c, e := k.scrub(p.Cmdline), k.scrub(p.Exe); c != p.Cmdline || e != p.Exe {
		p.Cmdline, p.Exe, changed = c, e, true
	}
	var parents []Ancestor
	for i, anc := range p.Parents {
		if c, e := k.scrub(anc.Cmdline), k.scrub(anc.Exe); c != anc.Cmdline || e != anc.Exe {
			if parents == nil {
				parents = slices.Clone(p.Parents)
			}
			parents[i].Cmdline, parents[i].Exe = c, e
		}
	}
	if parents != nil {
		p.Parents, changed = parents, true
	}
	return p, changed
}
