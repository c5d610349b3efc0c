// Reads IMDS the way a program using the AWS SDK for JavaScript does; the last argument names the
// API (arguments before it only label the run).
// The SDK comes from NODE_PATH (the test installs it from the npm registry). Prints what it got,
// never a credential.
'use strict';
const api = process.argv[process.argv.length - 1];

function done(err, what) {
  if (err) {
    console.error(String((err && err.stack) || err));
    process.exit(1);
  }
  console.log(what);
}

switch (api) {
  case 'EC2MetadataCredentials': {
    const AWS = require('aws-sdk');
    const c = new AWS.EC2MetadataCredentials({ httpOptions: { timeout: 2000 }, maxRetries: 0 });
    c.refresh((err) => done(err, c.accessKeyId ? 'credentials' : 'no credentials'));
    break;
  }
  case 'MetadataService.request': {
    const AWS = require('aws-sdk');
    new AWS.MetadataService({ httpOptions: { timeout: 2000 } })
      .request('/latest/meta-data/instance-id', (err, data) => done(err, data));
    break;
  }
  case 'fromInstanceMetadata': {
    const { fromInstanceMetadata } = require('@aws-sdk/credential-providers');
    fromInstanceMetadata({ timeout: 1000, maxRetries: 0 })()
      .then((c) => done(null, c.accessKeyId ? 'credentials' : 'no credentials'), (err) => done(err));
    break;
  }
  case 'http.get': {
    // Node's own HTTP client, as a program without an SDK calls IMDS (no User-Agent either).
    require('http').get('http://169.254.169.254/latest/meta-data/instance-id', (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => done(null, body));
    }).on('error', done);
    break;
  }
  default:
    done(new Error('unknown API ' + api));
}
