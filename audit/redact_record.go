package audit

import "slices"

// scrubKnown applies the remembered tokens once more to the text of r as it
// leaves for the aggregate and the sinks (executable paths included: a token
// has no business there, but knowledge costs nothing to apply). Its text was redacted when it
// entered (onRequest, attribute, the exec record); a token first seen on the
// wire after that, on another connection or later on this one, is caught
// here before any output sees the record.
func (a *Auditor) scrubKnown(r *Record) {
	k := a.known
	r.Path = k.scrub(r.Path)
	r.UserAgent = k.scrub(r.UserAgent)
	r.Process.Cmdline = k.scrub(r.Process.Cmdline)
	r.Process.Exe = k.scrub(r.Process.Exe)
	var parents []Ancestor // copied on change: records share their connection's chain
	for i, anc := range r.Process.Parents {
		if c, e := k.scrub(anc.Cmdline), k.scrub(anc.Exe); c != anc.Cmdline || e != anc.Exe {
			if parents == nil {
				parents = slices.Clone(r.Process.Parents)
			}
			parents[i].Cmdline, parents[i].Exe = c, e
		}
	}
	if parents != nil {
		r.Process.Parents = parents
	}
}
