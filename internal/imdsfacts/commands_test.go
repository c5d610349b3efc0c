package imdsfacts

import "testing"

func TestCommands(t *testing.T) {
	for _, tt := range []struct{ name, got, want string }{
		{"hop limit, ID unknown", MetadataOptions{HopLimit: 2, HTTPEndpoint: "enabled"}.Command(),
			"aws ec2 modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 2 --http-endpoint enabled"},
		{"tags", MetadataOptions{Tags: "enabled"}.Command(),
			"aws ec2 modify-instance-metadata-options --instance-id <id> --instance-metadata-tags enabled"},
		{"all fields, in order", MetadataOptions{Tags: "enabled", IPv6: "enabled", HTTPEndpoint: "enabled", HopLimit: 3,
			HTTPTokens: "required", InstanceID: "i-0123", Region: "eu-west-1"}.Command(),
			"aws ec2 modify-instance-metadata-options --region eu-west-1 --instance-id i-0123 --http-tokens required " +
				"--http-put-response-hop-limit 3 --http-endpoint enabled --http-protocol-ipv6 enabled --instance-metadata-tags enabled"},
		{"hostile ID is one shell word", MetadataOptions{InstanceID: "i-1; rm -rf ~ '", HTTPTokens: "optional"}.Command(),
			`aws ec2 modify-instance-metadata-options --instance-id 'i-1; rm -rf ~ '\''' --http-tokens optional`},
		{"runbook, hostile ID stays inside the quotes", MetadataOptions{InstanceID: "i-1'x", HTTPTokens: "required"}.Runbook(),
			`aws ssm start-automation-execution --document-name AWSSupport-ConfigureEC2Metadata --parameters 'InstanceId=i-1'\''x,EnforceIMDSv2=required'`},
		{"account default ignores the instance", MetadataOptions{InstanceID: "i-1", HTTPTokens: "required", HopLimit: 2,
			HTTPEndpoint: "enabled"}.AccountDefault(),
			"aws ec2 modify-instance-metadata-defaults --http-tokens required --http-put-response-hop-limit 2"},
		{"metric query", MetricQuery{Region: "eu-west-1", InstanceID: "i-0123", Metric: MetricNoToken, PeriodSeconds: 3600,
			Start: "2026-12-01T00:00:00Z", End: "2026-12-02T00:00:00Z"}.Command(),
			"aws cloudwatch get-metric-statistics --region eu-west-1 --namespace AWS/EC2 --metric-name MetadataNoToken " +
				"--dimensions Name=InstanceId,Value=i-0123 --statistics Sum --period 3600 " +
				"--start-time 2026-12-01T00:00:00Z --end-time 2026-12-02T00:00:00Z"},
		{"metric query, ID unknown, placeholders kept", MetricQuery{Metric: MetricNoTokenRejected, PeriodSeconds: 300,
			Start: "<when>", End: "<now>"}.Command(),
			"aws cloudwatch get-metric-statistics --namespace AWS/EC2 --metric-name MetadataNoTokenRejected " +
				"--dimensions Name=InstanceId,Value=<id> --statistics Sum --period 300 --start-time <when> --end-time <now>"},
		{"metric query, hostile ID is one shell word", MetricQuery{InstanceID: "i-1$(reboot)", Metric: MetricNoToken,
			PeriodSeconds: 60, Start: "a", End: "b"}.Command(),
			"aws cloudwatch get-metric-statistics --namespace AWS/EC2 --metric-name MetadataNoToken " +
				"--dimensions 'Name=InstanceId,Value=i-1$(reboot)' --statistics Sum --period 60 --start-time a --end-time b"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestEnforce(t *testing.T) {
	e := Enforce(MetadataOptions{Region: "us-east-2", InstanceID: "i-0a1b", HopLimit: 2, IPv6: "enabled",
		HTTPTokens: "optional", HTTPEndpoint: "disabled"})
	want := Enforcement{
		CLI: "aws ec2 modify-instance-metadata-options --region us-east-2 --instance-id i-0a1b --http-tokens required " +
			"--http-put-response-hop-limit 2 --http-endpoint enabled --http-protocol-ipv6 enabled",
		Runbook: "aws ssm start-automation-execution --region us-east-2 --document-name AWSSupport-ConfigureEC2Metadata " +
			"--parameters 'InstanceId=i-0a1b,EnforceIMDSv2=required,HttpPutResponseHopLimit=2,MetadataAccess=enabled'",
		Rollback:       "aws ec2 modify-instance-metadata-options --region us-east-2 --instance-id i-0a1b --http-tokens optional",
		AccountDefault: "aws ec2 modify-instance-metadata-defaults --region us-east-2 --http-tokens required --http-put-response-hop-limit 2",
	}
	if e != want {
		t.Errorf("Enforce:\n got %+v\nwant %+v", e, want)
	}
}
