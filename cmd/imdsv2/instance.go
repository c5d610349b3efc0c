package main

import (
	"context"
	"errors"
	"time"

	"github.com/imdsv2/imdsv2/audit"
	"github.com/imdsv2/imdsv2/imds"
)

// instanceReadBudget bounds the agent's read of the instance's identity at start.
const instanceReadBudget = 5 * time.Second

// recordInstance reads the instance's identity with IMDSv2 (the SDK's environment variables
// apply: AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_EC2_METADATA_DISABLED) and records it, or the
// failure, in the auditor's state.
func recordInstance(ctx context.Context, a *audit.Auditor) {
	in := audit.Instance{}
	c, err := probeClient("", instanceReadBudget)
	var id *audit.Instance
	if err == nil {
		id, err = readIdentity(ctx, c)
	}
	if err == nil {
		in = *id
	} else {
		in.Error = err.Error()
		var ie *imds.Error
		if errors.As(err, &ie) {
			in.ErrorKind = ie.Kind.String()
		}
	}
	in.ReadAt = time.Now().UTC()
	a.SetInstance(in)
}
