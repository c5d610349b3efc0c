package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/internal/imdsfacts"
	"github.com/imdsv2/imdsv2/ready"
)

const doctorDoc = `
Usage: imdsv2 doctor [flags]

Checks, from the network namespace it runs in (the host, or inside a container), how this
process can reach the EC2 instance metadata service (IMDS):

  - which endpoints answer: IPv4 169.254.169.254 and IPv6 [fd00:ec2::254] (the latter
    only on Nitro instances with HttpProtocolIpv6=enabled);
  - whether an IMDSv2 session token can be had, and if not why: IMDS disabled
    (HttpEndpoint=disabled), the token refused (a proxy in the way), or the token answer
    lost on the way, which is the hop-limit failure of a container behind a bridge when
    the instance's HttpPutResponseHopLimit is 1;
  - the instance's identity (instance id, region, availability zone, type);
  - with --probe-v1 only: whether IMDSv1 (a GET without a token) is still accepted, which
    says whether the instance has HttpTokens=optional or required. That probe is itself an
    IMDSv1 call: it is counted by the CloudWatch metric MetadataNoToken (or
    MetadataNoTokenRejected) and shows up in any audit of IMDSv1 callers.

Without --probe-v1 doctor sends IMDSv2 requests only.

Exit status: 0 healthy (a token and the identity were read), 1 IMDS answers but something
is wrong (the output says what and how to fix it), 2 nothing answers (not on EC2, or IMDS
cut off from this namespace) or bad usage.

Examples:
  imdsv2 doctor
  imdsv2 doctor --output json
  imdsv2 doctor --probe-v1 --timeout 10s
`

// doctorSchema is the version of the layout of doctor's JSON document; it changes when a field
// changes meaning or goes away (fields may be added).
const doctorSchema = 1

// doctorReport is the --output json document of `imdsv2 doctor`. Field names are stable.
type doctorReport struct {
	Schema int `json:"schema"`
	// Status is "healthy", "unhealthy" or "unreachable".
	Status    string          `json:"status"`
	Healthy   bool            `json:"healthy"`
	Endpoints []endpointCheck `json:"endpoints"`
	Identity  *ready.Identity `json:"identity,omitempty"`
	IMDSv1    *v1Probe        `json:"imdsv1,omitempty"`
	Problems  []string        `json:"problems"`
}

// endpointCheck is what one endpoint did.
type endpointCheck struct {
	Family   string `json:"family"` // "ipv4", "ipv6" or "custom"
	Endpoint string `json:"endpoint"`
	// Answers says that something answered at the address (a token, or an error from IMDS).
	Answers bool `json:"answers"`
	Token   bool `json:"token"`
	// Status is "ok" or the error kind: "unreachable", "hop-limit", "disabled",
	// "token-refused", ...
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// v1Probe is the outcome of --probe-v1.
type v1Probe struct {
	Endpoint   string `json:"endpoint"`
	Accepted   bool   `json:"accepted"`
	StatusCode int    `json:"status_code,omitempty"`
	Meaning    string `json:"meaning"`
}

// doctorConfig is the command line of `imdsv2 doctor`.
type doctorConfig struct {
	endpoint string
	timeout  time.Duration
	probeV1  bool
	output   *choiceFlag
}

func (c *doctorConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", "", "check only this endpoint `URL`, e.g. http://[fd00:ec2::254] (default: both IPv4 and IPv6)")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Second, "time budget per endpoint")
	fs.BoolVar(&c.probeV1, "probe-v1", false, "also send ONE IMDSv1 (tokenless) GET to see whether IMDSv1 is accepted; "+
		"it is itself an IMDSv1 call, counted by MetadataNoToken")
	c.output = newOutputFlag()
	fs.Var(c.output, "output", "text or json")
}

func (c *doctorConfig) setArgs(args []string) error {
	if c.timeout <= 0 {
		return usageErrorf("--timeout must be positive, not %v", c.timeout)
	}
	return noArgs(args)
}

// run checks, prints the report and exits 0 healthy, 1 unhealthy, 2 unreachable.
func (c *doctorConfig) run(ctx context.Context, s streams) error {
	rep, err := c.check(ctx)
	if err != nil {
		return err
	}
	if c.output.json() {
		if err := writeJSON(s.out, rep); err != nil {
			return err
		}
	} else {
		writeDoctorText(s.out, rep, c.probeV1)
	}
	switch rep.Status {
	case "healthy":
		return nil
	case "unhealthy":
		return exitStatus(exitFail)
	}
	return exitStatus(exitUsage)
}

// check asks each endpoint for a token and the identity, and diagnoses what failed.
func (c *doctorConfig) check(ctx context.Context) (doctorReport, error) {
	targets := []endpointCheck{{Family: "ipv4", Endpoint: imds.EndpointIPv4}, {Family: "ipv6", Endpoint: imds.EndpointIPv6}}
	if c.endpoint != "" {
		targets = []endpointCheck{{Family: "custom", Endpoint: strings.TrimSuffix(c.endpoint, "/")}}
	}
	rep := doctorReport{Schema: doctorSchema, Problems: []string{}}
	for _, ep := range targets {
		client, err := probeClient(ep.Endpoint, c.timeout)
		if err != nil {
			return rep, usageErrorf("%v", err)
		}
		ident, err := readIdentity(ctx, client)
		ep.Status, ep.Token, ep.Answers = "ok", err == nil, true
		if err != nil {
			ep.Status, ep.Message = errorKind(err), err.Error()
			ep.Answers = !errors.Is(err, imds.ErrUnreachable) && !errors.Is(err, context.DeadlineExceeded)
		}
		if ident != nil && rep.Identity == nil {
			rep.Identity = ident
		}
		rep.Endpoints = append(rep.Endpoints, ep)
	}
	rep.Healthy = rep.Identity != nil
	answered := ""
	for _, ep := range rep.Endpoints {
		if ep.Answers && answered == "" {
			answered = ep.Endpoint
		}
		if problem := diagnose(ep, rep.Identity); problem != "" {
			rep.Problems = append(rep.Problems, problem)
		}
	}
	switch {
	case rep.Healthy:
		rep.Status = "healthy"
	case answered != "":
		rep.Status = "unhealthy"
	default:
		rep.Status = "unreachable"
		rep.Problems = append(rep.Problems, "no IMDS endpoint answered: this is not an EC2 instance, or IMDS is "+
			"cut off from this network namespace (a firewall rule, a network policy)")
	}
	if c.probeV1 && answered != "" {
		rep.IMDSv1 = probeIMDSv1(ctx, answered, c.timeout)
	}
	return rep, nil
}

// diagnose turns one endpoint's failure into a problem line with its fix ("" if fine).
func diagnose(ep endpointCheck, id *ready.Identity) string {
	instance := "" // renders as imdsfacts.UnknownInstance
	if id != nil {
		instance = id.InstanceID
	}
	switch ep.Status {
	case "ok":
		return ""
	case "unreachable":
		if ep.Family == "ipv6" && id != nil {
			return "" // normal unless the instance has HttpProtocolIpv6=enabled; shown, not a problem
		}
		return fmt.Sprintf("%s does not answer: %s", ep.Endpoint, ep.Message)
	case "hop-limit":
		return fmt.Sprintf("%s accepted the connection but the token answer never arrived: this process runs behind a "+
			"bridge (a container) and the instance's HttpPutResponseHopLimit is too low for it (1). Fix: %s",
			ep.Endpoint, imdsfacts.MetadataOptions{InstanceID: instance, HopLimit: imdsfacts.HopLimitForContainers,
				HTTPEndpoint: "enabled"}.Command())
	case "disabled":
		return fmt.Sprintf("%s answers 403: IMDS is disabled on this instance (HttpEndpoint=disabled). Fix, if software "+
			"here needs it: %s", ep.Endpoint,
			imdsfacts.MetadataOptions{InstanceID: instance, HTTPTokens: "required", HTTPEndpoint: "enabled"}.Command())
	}
	return fmt.Sprintf("%s: %s", ep.Endpoint, ep.Message)
}

// probeIMDSv1 sends one tokenless GET: the only IMDSv1 request this program ever makes, and
// only when asked with --probe-v1.
func probeIMDSv1(ctx context.Context, endpoint string, timeout time.Duration) *v1Probe {
	p := &v1Probe{Endpoint: endpoint}
	// IMDS never redirects: a redirect is reported, not followed to wherever it points.
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/latest/meta-data/instance-id", nil)
	if err == nil {
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			p.StatusCode = resp.StatusCode
		}
	}
	switch {
	case err != nil:
		p.Meaning = "the IMDSv1 probe got no answer: " + err.Error()
	case p.StatusCode == http.StatusOK:
		p.Accepted = true
		p.Meaning = "IMDSv1 is accepted (HttpTokens=optional): programs may still use it; run `imdsv2 ready` to find them " +
			"(this probe was itself one IMDSv1 call, counted by MetadataNoToken)"
	case p.StatusCode == http.StatusUnauthorized:
		p.Meaning = "IMDSv1 is refused with 401 (HttpTokens=required): IMDSv2 is enforced"
	case p.StatusCode == http.StatusForbidden:
		p.Meaning = "IMDS answered 403: it is disabled (HttpEndpoint=disabled)"
	case p.StatusCode >= 300 && p.StatusCode < 400:
		p.Meaning = fmt.Sprintf("the IMDSv1 probe was answered with a redirect (%d), which IMDS never sends: "+
			"this endpoint is not EC2's IMDS; the redirect was not followed", p.StatusCode)
	default:
		p.Meaning = fmt.Sprintf("unexpected answer %d to the IMDSv1 probe", p.StatusCode)
	}
	return p
}

func writeDoctorText(w io.Writer, rep doctorReport, probed bool) {
	head := map[string]string{"healthy": "HEALTHY: IMDSv2 works from here",
		"unhealthy": "PROBLEM: IMDS answers, but IMDSv2 does not work from here", "unreachable": "UNREACHABLE: no IMDS here"}
	fmt.Fprintf(w, "imdsv2 doctor: %s\n\nEndpoints:\n", head[rep.Status])
	for _, ep := range rep.Endpoints {
		what := "session token and identity read"
		if ep.Status != "ok" {
			what = ep.Status
			if ep.Family == "ipv6" && ep.Status == "unreachable" {
				what += " (normal unless the instance has HttpProtocolIpv6=enabled on Nitro)"
			}
		}
		fmt.Fprintf(w, "  %-6s %-26s %s\n", ep.Family, ep.Endpoint, what)
	}
	if id := rep.Identity; id != nil {
		fmt.Fprintf(w, "\nInstance: %s  region %s  zone %s  type %s\n", id.InstanceID, id.Region, id.AvailabilityZone, id.InstanceType)
	}
	switch {
	case rep.IMDSv1 != nil:
		fmt.Fprintf(w, "\nIMDSv1: %s\n", rep.IMDSv1.Meaning)
	case !probed:
		fmt.Fprintln(w, "\nIMDSv1: not probed (--probe-v1 checks it with one IMDSv1 call, which MetadataNoToken counts)")
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w, "\nProblems:")
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
}
