"""A workload of the end-to-end test of real clients (realclients_test.go): Debian's botocore
loading credentials through its default chain, which ends in InstanceMetadataProvider (IMDS).
It runs only inside the test bed's namespaces, started by the test, with HOME and the AWS
configuration files pointed at an empty directory.

    botocore_client.py credentials          the credential chain; prints the method found
    botocore_client.py spawn-curl URL       the same, then runs curl on URL without a token
"""
import subprocess
import sys

import botocore.session


def credentials():
    creds = botocore.session.get_session().get_credentials()
    if creds is None:
        sys.exit("botocore_client: no credentials found")
    print(creds.method)


def main():
    mode = sys.argv[1]
    if mode == "credentials":
        credentials()
    elif mode == "spawn-curl":
        credentials()
        # A child process of the SDK process that reads metadata without a token.
        subprocess.run(["curl", "-sS", "-m", "60", sys.argv[2]], check=True)
    else:
        sys.exit("botocore_client: unknown mode " + mode)


main()
