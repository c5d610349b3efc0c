// Package httpreq parses the header blocks of HTTP/1.x requests and answers
// seen on connections to the EC2 instance metadata service, and classifies
// requests (IMDSv1 GET, IMDSv2 GET, token PUT, another cloud's metadata
// probe, other).
//
// It is written for hostile input: any header-name case, garbage, binary
// bytes, truncated blocks and huge lines give an error or a partial result,
// never a panic. It never keeps the value of the X-aws-ec2-metadata-token
// header, and it never looks at a body.
package httpreq
