package audit

import "time"

// Instance is the instance's identity as the agent read it from IMDS (with IMDSv2) when it
// started, kept in the state file so that a verdict read from it needs no IMDS request of its
// own. A read that failed (behind a hop limit of 1 in a pod, IMDS disabled, not on EC2) is
// recorded with its error and never stops the audit.
type Instance struct {
	InstanceID       string `json:"instance_id"`
	Region           string `json:"region,omitempty"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
	InstanceType     string `json:"instance_type,omitempty"`
	// ReadAt is when the agent read it.
	ReadAt time.Time `json:"read_at,omitzero"`
	// Error says why the last read failed; ErrorKind is its imds error kind ("unreachable",
	// "disabled", "hop limit", ...). A failed read keeps an identity read before.
	Error     string `json:"error,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
}

// SetInstance records what the agent read of the instance's identity. A successful read
// replaces what was known; a failed one keeps an identity read before (a state file of the
// same instance) and notes the error.
func (a *Auditor) SetInstance(in Instance) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.agg.instance
	switch {
	case in.InstanceID != "" && cur != nil && cur.InstanceID != "" && in.InstanceID != cur.InstanceID:
		// The state file came from another instance (an image built with it, a copied
		// disk): what it says was watched was watched there. Its counts stay (they can
		// only add reasons), its coverage goes.
		a.agg.cov.dropRestored()
		a.opts.Logf("audit: the state file was written on %s, this is %s: its coverage does not count here",
			cur.InstanceID, in.InstanceID)
		a.agg.instance = &in
	case in.InstanceID != "" || cur == nil:
		a.agg.instance = &in
	default:
		kept := *cur
		kept.Error, kept.ErrorKind = in.Error, in.ErrorKind
		a.agg.instance = &kept
	}
}
