package imdsfacts

import (
	"cmp"
	"strconv"
	"strings"
)

// HopLimitForContainers is the HttpPutResponseHopLimit AWS recommends for
// hosts that run containers on a bridge (one hop more than the host), and the
// default of AMIs with imds-support v2.0.
const HopLimitForContainers = 2

// UnknownInstance stands for the instance ID in commands written before the
// ID is known; the reader replaces it.
const UnknownInstance = "<id>"

// MetadataOptions is a change of an instance's metadata options, as
// `aws ec2 modify-instance-metadata-options` takes it. Fields left zero are
// not changed.
type MetadataOptions struct {
	// Region adds --region when set; otherwise the CLI's configured region applies.
	Region string
	// InstanceID is the instance to change; UnknownInstance when empty.
	InstanceID string
	// HTTPTokens is HttpTokens: "required" or "optional".
	HTTPTokens string
	// HopLimit is HttpPutResponseHopLimit, 1 to 64.
	HopLimit int
	// HTTPEndpoint is HttpEndpoint: "enabled" or "disabled".
	HTTPEndpoint string
	// IPv6 is HttpProtocolIpv6: "enabled" or "disabled".
	IPv6 string
	// Tags is InstanceMetadataTags: "enabled" or "disabled".
	Tags string
}

// Command renders the change as an AWS CLI command. Its arguments always come
// in the same order: region, instance, tokens, hop limit, endpoint, IPv6, tags.
func (o MetadataOptions) Command() string {
	var b strings.Builder
	b.WriteString("aws ec2 modify-instance-metadata-options")
	o.args(&b, true)
	return b.String()
}

// AccountDefault renders the tokens and hop limit of o as the default for
// instances launched later in the region (`modify-instance-metadata-defaults`);
// the instance and the other fields do not apply.
func (o MetadataOptions) AccountDefault() string {
	var b strings.Builder
	b.WriteString("aws ec2 modify-instance-metadata-defaults")
	MetadataOptions{Region: o.Region, HTTPTokens: o.HTTPTokens, HopLimit: o.HopLimit}.args(&b, false)
	return b.String()
}

// Runbook renders the change as a start of the Systems Manager Automation
// runbook AWSSupport-ConfigureEC2Metadata (which needs
// ec2:ModifyInstanceMetadataOptions and ec2:DescribeInstances). The runbook
// sets tokens, hop limit and endpoint only; IPv6 and Tags are not rendered.
func (o MetadataOptions) Runbook() string {
	var b strings.Builder
	b.WriteString("aws ssm start-automation-execution")
	if o.Region != "" {
		b.WriteString(" --region " + quote(o.Region))
	}
	params := []string{"InstanceId=" + cmp.Or(o.InstanceID, UnknownInstance)}
	if o.HTTPTokens != "" {
		params = append(params, "EnforceIMDSv2="+o.HTTPTokens)
	}
	if o.HopLimit != 0 {
		params = append(params, "HttpPutResponseHopLimit="+strconv.Itoa(o.HopLimit))
	}
	if o.HTTPEndpoint != "" {
		params = append(params, "MetadataAccess="+o.HTTPEndpoint)
	}
	b.WriteString(" --document-name AWSSupport-ConfigureEC2Metadata --parameters ")
	b.WriteString(singleQuote(strings.Join(params, ",")))
	return b.String()
}

func (o MetadataOptions) args(b *strings.Builder, instance bool) {
	arg := func(name, value string) {
		if value != "" {
			b.WriteString(" --" + name + " " + quote(value))
		}
	}
	arg("region", o.Region)
	if instance {
		id := UnknownInstance
		if o.InstanceID != "" {
			id = quote(o.InstanceID)
		}
		b.WriteString(" --instance-id " + id)
	}
	arg("http-tokens", o.HTTPTokens)
	if o.HopLimit != 0 {
		arg("http-put-response-hop-limit", strconv.Itoa(o.HopLimit))
	}
	arg("http-endpoint", o.HTTPEndpoint)
	arg("http-protocol-ipv6", o.IPv6)
	arg("instance-metadata-tags", o.Tags)
}

// Enforcement holds the commands that require IMDSv2 on an instance.
type Enforcement struct {
	// CLI requires IMDSv2 with the AWS CLI.
	CLI string
	// Runbook does the same through AWSSupport-ConfigureEC2Metadata.
	Runbook string
	// Rollback allows IMDSv1 again (HttpTokens=optional), leaving the rest.
	Rollback string
	// AccountDefault makes IMDSv2 and the hop limit the default for new
	// instances in the region.
	AccountDefault string
}

// Enforce returns the commands that require IMDSv2 (HttpTokens=required,
// HttpEndpoint=enabled) on o.InstanceID with hop limit o.HopLimit, and o.IPv6
// and o.Tags when set; o.HTTPTokens and o.HTTPEndpoint are ignored.
func Enforce(o MetadataOptions) Enforcement {
	o.HTTPTokens, o.HTTPEndpoint = "required", "enabled"
	return Enforcement{
		CLI:            o.Command(),
		Runbook:        o.Runbook(),
		Rollback:       MetadataOptions{Region: o.Region, InstanceID: o.InstanceID, HTTPTokens: "optional"}.Command(),
		AccountDefault: o.AccountDefault(),
	}
}

// CloudWatch metrics of AWS/EC2, per InstanceId, that count IMDS calls without
// a token: MetricNoToken those answered (IMDSv1 calls), MetricNoTokenRejected
// those refused because the instance requires IMDSv2.
const (
	MetricNoToken         = "MetadataNoToken"
	MetricNoTokenRejected = "MetadataNoTokenRejected"
)

// MetricQuery is a query of one instance's AWS/EC2 metric: its sum per period
// over a time range.
type MetricQuery struct {
	// Region adds --region when set.
	Region string
	// InstanceID is the instance; UnknownInstance when empty.
	InstanceID string
	// Metric is MetricNoToken or MetricNoTokenRejected.
	Metric string
	// PeriodSeconds is the length of each sum: 60 or a multiple of it.
	PeriodSeconds int
	// Start and End are written as given: times (2026-12-01T00:00:00Z), shell
	// expressions for the reader's shell to expand, or placeholders to replace.
	Start, End string
}

// Command renders q as `aws cloudwatch get-metric-statistics`.
func (q MetricQuery) Command() string {
	var b strings.Builder
	b.WriteString("aws cloudwatch get-metric-statistics")
	if q.Region != "" {
		b.WriteString(" --region " + quote(q.Region))
	}
	b.WriteString(" --namespace AWS/EC2 --metric-name " + quote(q.Metric))
	dim := "Name=InstanceId,Value=" + UnknownInstance
	if q.InstanceID != "" {
		dim = quote("Name=InstanceId,Value=" + q.InstanceID)
	}
	b.WriteString(" --dimensions " + dim)
	b.WriteString(" --statistics Sum --period " + strconv.Itoa(q.PeriodSeconds))
	b.WriteString(" --start-time " + q.Start + " --end-time " + q.End)
	return b.String()
}

// quote returns s as one shell word: as is when it is plain (letters, digits,
// and . _ - : / = ,), single-quoted otherwise, so that an instance ID or region
// read from a state file cannot add shell syntax to a command a person pastes.
func quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._-:/=,", r))
	}) {
		return s
	}
	return singleQuote(s)
}

func singleQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
