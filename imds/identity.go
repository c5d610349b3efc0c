package imds

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"time"
)

const (
	pathIdentityDocument  = "/latest/dynamic/instance-identity/document"
	pathIdentitySignature = "/latest/dynamic/instance-identity/signature"
)

// maxSignatureBytes bounds the base64 signature: RSA-4096 is 684 characters.
const maxSignatureBytes = 4096

// IdentityDocument is the instance identity document: who and where the instance is, as
// signed by AWS.
type IdentityDocument struct {
	AccountID               string    `json:"accountId"`
	Architecture            string    `json:"architecture"`
	AvailabilityZone        string    `json:"availabilityZone"`
	BillingProducts         []string  `json:"billingProducts"`
	DevpayProductCodes      []string  `json:"devpayProductCodes"`
	MarketplaceProductCodes []string  `json:"marketplaceProductCodes"`
	ImageID                 string    `json:"imageId"`
	InstanceID              string    `json:"instanceId"`
	InstanceType            string    `json:"instanceType"`
	KernelID                string    `json:"kernelId"`
	PendingTime             time.Time `json:"pendingTime"`
	PrivateIP               string    `json:"privateIp"`
	RamdiskID               string    `json:"ramdiskId"`
	Region                  string    `json:"region"`
	Version                 string    `json:"version"`

	// Raw is the document exactly as served; the signature is over these bytes.
	Raw []byte `json:"-"`
}

// IdentityDocument returns the instance identity document, unverified. Use
// VerifiedIdentityDocument where the document must be trusted.
func (c *Client) IdentityDocument(ctx context.Context) (*IdentityDocument, error) {
	return c.identityDocument(ctx, "IdentityDocument")
}

// identityDocument is IdentityDocument for the Client method op.
func (c *Client) identityDocument(ctx context.Context, op string) (*IdentityDocument, error) {
	b, err := c.get(ctx, op, pathIdentityDocument)
	if err != nil {
		return nil, err
	}
	doc, perr := parseIdentityDocument(b)
	if perr != nil {
		return nil, malformed(http.MethodGet, pathIdentityDocument, c.baseURL(), "identity document", perr)
	}
	return doc, nil
}

// VerifiedIdentityDocument returns the identity document after checking its signature (the
// base64 RSA-SHA256 signature at dynamic/instance-identity/signature) against cert, which must
// hold an RSA public key: AWS's public certificate for the instance's region, from the EC2
// documentation ("Verify the instance identity document"). Only the key is used: the
// certificate's dates and chain are not checked, as AWS publishes these certificates for
// pinning. A mismatch is ErrBadSignature.
func (c *Client) VerifiedIdentityDocument(ctx context.Context, cert *x509.Certificate) (*IdentityDocument, error) {
	if _, err := rsaKey(cert); err != nil {
		return nil, invalidArgument("verify", pathIdentityDocument, err.Error())
	}
	doc, err := c.identityDocument(ctx, "VerifiedIdentityDocument")
	if err != nil {
		return nil, err
	}
	sig, err := c.get(ctx, "VerifiedIdentityDocument", pathIdentitySignature)
	if err != nil {
		return nil, err
	}
	if err := VerifyIdentitySignature(doc.Raw, sig, cert); err != nil {
		var e *Error
		if errors.As(err, &e) {
			n := *e
			n.Endpoint = c.baseURL()
			return nil, &n
		}
		return nil, err
	}
	return doc, nil
}

// VerifyIdentitySignature checks signature, the base64 RSA PKCS#1 v1.5 SHA-256 signature IMDS
// serves at dynamic/instance-identity/signature, over document (the exact bytes served), with
// cert's RSA public key. It returns nil, or an *Error of kind KindBadSignature (the signature
// does not match), KindMalformed (it is not base64) or KindInvalidArgument (cert is unusable).
func VerifyIdentitySignature(document, signature []byte, cert *x509.Certificate) error {
	key, err := rsaKey(cert)
	if err != nil {
		return invalidArgument("verify", pathIdentityDocument, err.Error())
	}
	sig, err := decodeSignature(signature)
	if err != nil {
		return newError(KindMalformed, "verify", pathIdentitySignature, "", 0, err,
			"the signature is not valid base64: "+err.Error())
	}
	sum := sha256.Sum256(document)
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return newError(KindBadSignature, "verify", pathIdentityDocument, "", 0, err,
			"the identity document's signature does not verify with the given certificate: either "+
				"the certificate is not the one for this region and partition, or the document did "+
				"not come from AWS; do not trust it")
	}
	return nil
}

func rsaKey(cert *x509.Certificate) (*rsa.PublicKey, error) {
	if cert == nil {
		return nil, errors.New("no certificate given: pass AWS's public certificate for the region")
	}
	key, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the certificate's key is not RSA: pass the RSA certificate AWS " +
			"publishes for the signature (not the DSA one for pkcs7)")
	}
	return key, nil
}

// decodeSignature decodes base64 that may be split over lines.
func decodeSignature(b []byte) ([]byte, error) {
	if len(b) > maxSignatureBytes {
		return nil, errors.New("signature longer than 4096 bytes")
	}
	clean := make([]byte, 0, len(b))
	for _, ch := range b {
		if ch != '\n' && ch != '\r' && ch != ' ' && ch != '\t' {
			clean = append(clean, ch)
		}
	}
	if len(clean) == 0 {
		return nil, errors.New("empty signature")
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, errors.New("invalid base64")
	}
	return out[:n], nil
}

// parseIdentityDocument decodes the document and checks that it names an instance and region.
func parseIdentityDocument(b []byte) (*IdentityDocument, error) {
	var d IdentityDocument
	if err := strictJSON(b, &d); err != nil {
		return nil, err
	}
	if d.InstanceID == "" || d.Region == "" || d.AccountID == "" {
		return nil, errors.New("instanceId, region or accountId missing")
	}
	d.Raw = bytes.Clone(b)
	return &d, nil
}
