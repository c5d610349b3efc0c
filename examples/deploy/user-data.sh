#!/bin/bash
# EC2 user data: install imdsv2 and run the IMDS auditor as a service, so that after a few days
# `imdsv2 ready` can say whether this instance can switch to HttpTokens=required.
# Assumes the imdsv2 binary is available from your artifact store; adjust the copy line.
set -euo pipefail
install -m 0755 /opt/artifacts/imdsv2 /usr/local/bin/imdsv2
install -d -m 0750 /var/lib/imdsv2
cat >/etc/systemd/system/imdsv2-audit.service <<'UNIT'
[Unit]
Description=imdsv2 IMDS auditor (who still calls IMDSv1)
After=network-online.target

[Service]
ExecStart=/usr/local/bin/imdsv2 audit --duration 0 --state /var/lib/imdsv2/audit.state --metrics-addr 127.0.0.1:9721
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now imdsv2-audit.service
# Every process started after this point uses IMDSv2 only, or the auditor names it.
