"""A workload of the end-to-end test of real clients (realclients_test.go): Debian's cloud-init
crawling IMDS with its EC2 datasource (DataSourceEc2.crawl_metadata, what `cloud-init init`
runs), and nothing else: no datasource search, no network or system configuration; its state
goes to a temporary directory. It runs only inside the test bed's namespaces.

    cloudinit_crawl.py CLOUD    CLOUD is the cloud name cloud-init identified: "aws" (it then
                                uses a token) or "unknown" (another EC2-compatible cloud: no token)
"""
import sys
import tempfile

from cloudinit import distros, helpers, util
from cloudinit.sources import DataSourceEc2

# No DNS-redirection probe: it looks up names that do not exist, which only adds time here.
util._DNS_REDIRECT_IP = set()

tmp = tempfile.mkdtemp(prefix="imdsv2-cloudinit-")
paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
distro = distros.fetch("debian")("debian", {}, paths)
# One token attempt of 5 s, then give up: with max_wait above the attempt's time-out, wait_for_url
# (22.4.2) shortens a later attempt's time-out to what is left of max_wait, and a remainder under
# a second becomes no time-out at all, which waits for ever on an answer that never comes (a token
# answer dropped by the hop limit).
sys_cfg = {"datasource": {"Ec2": {"metadata_urls": ["http://169.254.169.254"], "max_wait": 3, "timeout": 5}}}
ds = DataSourceEc2.DataSourceEc2(sys_cfg, distro, paths)
ds._cloud_name = sys.argv[1]  # what identify_platform() would have found from DMI
crawled = ds.crawl_metadata()
if not crawled:
    sys.exit("cloudinit_crawl: no metadata crawled")
print(crawled["meta-data"]["instance-id"])
