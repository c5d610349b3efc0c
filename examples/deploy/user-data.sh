#!/bin/bash
# EC2 user data: install imdsv2 and run the IMDS auditor as a service, so that after a few days
# `imdsv2 ready` can say whether this instance can switch to HttpTokens=required.
#
# cloud-init runs this once, as root, at first boot. Set IMDSV2_URL and IMDSV2_SHA256 to the
# binary in your artifact store (`make build` produces a static bin/imdsv2; `sha256sum` it).
# The output goes to /var/log/cloud-init-output.log.
set -euo pipefail

IMDSV2_URL="https://artifacts.example.com/imdsv2/imdsv2-linux-amd64"   # replace
IMDSV2_SHA256="REPLACE_WITH_THE_SHA256_OF_THE_BINARY"                   # replace

if [[ "$IMDSV2_SHA256" == REPLACE* ]]; then
	echo "user-data: set IMDSV2_URL and IMDSV2_SHA256 first" >&2
	exit 1
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsSL --retry 5 --retry-delay 2 -o "$tmp" "$IMDSV2_URL"
echo "$IMDSV2_SHA256  $tmp" | sha256sum -c --quiet -
install -m 0755 "$tmp" /usr/local/bin/imdsv2

# Fail here, with the reason, if this instance cannot use IMDSv2 at all (e.g. HttpEndpoint=disabled).
echo "user-data: instance $(imdsv2 get meta-data/instance-id), IMDSv2 works"

# The same unit as examples/deploy/imdsv2-audit.service.
cat >/etc/systemd/system/imdsv2-audit.service <<'UNIT'
[Unit]
Description=imdsv2 auditor: which processes still call IMDSv1
Documentation=https://github.com/imdsv2/imdsv2
After=local-fs.target

[Service]
Type=simple
ExecStart=/usr/local/bin/imdsv2 audit --duration 0 --state /var/lib/imdsv2/audit.state --metrics-addr 127.0.0.1:9721
Restart=on-failure
RestartSec=5s
StateDirectory=imdsv2
StateDirectoryMode=0750
CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_RESOURCE CAP_SYS_PTRACE CAP_DAC_READ_SEARCH
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
MemoryMax=256M
CPUQuota=20%
Nice=10

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now imdsv2-audit.service
# Processes started after this point use IMDSv2 only, or the auditor names them.
echo "user-data: imdsv2-audit.service started; later run: imdsv2 ready --state /var/lib/imdsv2/audit.state"
