package imdstest_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

func TestIdentityDocument(t *testing.T) {
	clk := newClock()
	s := newServer(t, imdstest.Config{
		Now: clk.Now, InstanceID: "i-0feed", Region: "ap-southeast-2", AvailabilityZone: "ap-southeast-2b",
		InstanceType: "c7i.xlarge", AMIID: "ami-0beef", AccountID: "210987654321", LocalIPv4: "10.9.8.7",
		Architecture: "arm64",
	})
	a := get(t, s, token(t, s, "60"), "/latest/dynamic/instance-identity/document")
	require.Equal(t, 200, a.status)

	// The client's own document type: the emulator serves no field the client does not know.
	var doc imds.IdentityDocument
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&doc))
	assert.Equal(t, "210987654321", doc.AccountID)
	assert.Equal(t, "arm64", doc.Architecture)
	assert.Equal(t, "ap-southeast-2b", doc.AvailabilityZone)
	assert.Equal(t, "ami-0beef", doc.ImageID)
	assert.Equal(t, "i-0feed", doc.InstanceID)
	assert.Equal(t, "c7i.xlarge", doc.InstanceType)
	assert.Equal(t, clk.Now(), doc.PendingTime)
	assert.Equal(t, "10.9.8.7", doc.PrivateIP)
	assert.Equal(t, "ap-southeast-2", doc.Region)
	assert.Equal(t, "2017-09-30", doc.Version)
	assert.Contains(t, a.body, `"kernelId" : null`)
	assert.Contains(t, a.body, `"ramdiskId" : null`)
	assert.Contains(t, a.body, `"accountId" : "210987654321"`, "IMDS's spacing, which signatures cover")
}

func TestIdentitySignature(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	tok := token(t, s, "60")
	doc := get(t, s, tok, "/latest/dynamic/instance-identity/document")
	sigText := get(t, s, tok, "/latest/dynamic/instance-identity/signature")
	require.Equal(t, 200, doc.status)
	require.Equal(t, 200, sigText.status)

	cert := s.SigningCertificate()
	require.NotNil(t, cert)
	assert.Contains(t, cert.Subject.String(), "not AWS")
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	require.True(t, ok)
	assert.Equal(t, 2048, pub.N.BitLen())

	sig, err := base64.StdEncoding.DecodeString(sigText.body)
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(doc.body))
	require.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig))

	tampered := sha256.Sum256([]byte(strings.Replace(doc.body, "i-0123", "i-9123", 1)))
	assert.Error(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, tampered[:], sig))

	// Another server in the process signs with the same test key; an Update re-signs.
	other := newServer(t, imdstest.Config{InstanceID: "i-0other"})
	assert.Equal(t, cert.Raw, other.SigningCertificate().Raw)
	s.Update(func(c *imdstest.Config) { c.InstanceID = "i-0updated" })
	doc2 := get(t, s, tok, "/latest/dynamic/instance-identity/document").body
	sig2, err := base64.StdEncoding.DecodeString(get(t, s, tok, "/latest/dynamic/instance-identity/signature").body)
	require.NoError(t, err)
	assert.Contains(t, doc2, "i-0updated")
	sum2 := sha256.Sum256([]byte(doc2))
	require.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum2[:], sig2))
}

// pkcs7 mirrors the parts of a PKCS#7 SignedData the test needs to check.
type pkcs7 struct {
	ContentType asn1.ObjectIdentifier
	SignedData  struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      struct {
			ContentType asn1.ObjectIdentifier
			Content     []byte `asn1:"explicit,tag:0"`
		}
		Certificates asn1.RawValue `asn1:"tag:0"`
		SignerInfos  []struct {
			Version               int
			IssuerAndSerialNumber asn1.RawValue
			DigestAlgorithm       asn1.RawValue
			EncryptionAlgorithm   asn1.RawValue
			EncryptedDigest       []byte
		} `asn1:"set"`
	} `asn1:"explicit,tag:0"`
}

func TestIdentityPKCS7(t *testing.T) {
	s := newServer(t, imdstest.Config{})
	tok := token(t, s, "60")
	doc := get(t, s, tok, "/latest/dynamic/instance-identity/document").body
	cert := s.SigningCertificate()
	require.NotNil(t, cert)

	for _, name := range []string{"pkcs7", "rsa2048"} {
		t.Run(name, func(t *testing.T) {
			a := get(t, s, tok, "/latest/dynamic/instance-identity/"+name)
			require.Equal(t, 200, a.status)
			for _, l := range lines(a.body) {
				assert.LessOrEqual(t, len(l), 64, "wrapped like IMDS")
			}
			der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(a.body, "\n", ""))
			require.NoError(t, err)

			var p pkcs7
			rest, err := asn1.Unmarshal(der, &p)
			require.NoError(t, err)
			assert.Empty(t, rest)
			assert.Equal(t, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}, p.ContentType)
			assert.Equal(t, doc, string(p.SignedData.ContentInfo.Content))
			embedded, err := x509.ParseCertificate(p.SignedData.Certificates.Bytes)
			require.NoError(t, err)
			assert.Equal(t, cert.Raw, embedded.Raw)
			require.Len(t, p.SignedData.SignerInfos, 1)
			sum := sha256.Sum256([]byte(doc))
			require.NoError(t, rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:],
				p.SignedData.SignerInfos[0].EncryptedDigest))

			verifyWithOpenSSL(t, der, cert, doc)
		})
	}
}

// verifyWithOpenSSL checks the PKCS#7 with an independent implementation when one is installed.
func verifyWithOpenSSL(t *testing.T, der []byte, cert *x509.Certificate, doc string) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed: independent PKCS#7 check skipped")
		return
	}
	dir := t.TempDir()
	p7 := filepath.Join(dir, "doc.p7")
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(p7, der, 0o600))
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600))
	out, err := exec.Command(openssl, "smime", "-verify", "-inform", "DER", "-in", p7,
		"-CAfile", ca, "-purpose", "any").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), doc)
}
