package imdstest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"sync"
	"time"
)

// The signing key is made once per process: a 2048-bit RSA key takes long enough to generate
// that doing it per server would slow every test down, and nothing depends on servers having
// different keys. It exists only in memory and signs only emulated documents.
var (
	signerOnce sync.Once
	signerKey  *rsa.PrivateKey
	signerCert []byte // DER
	signerErr  error
)

func signer() (*rsa.PrivateKey, *x509.Certificate, error) {
	signerOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			signerErr = err
			return
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		if err != nil {
			signerErr = err
			return
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject: pkix.Name{
				Organization: []string{"imdstest emulator (not AWS)"},
				CommonName:   "imdstest instance identity test key",
			},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			signerErr = err
			return
		}
		signerKey, signerCert = key, der
	})
	if signerErr != nil {
		return nil, nil, signerErr
	}
	cert, err := x509.ParseCertificate(signerCert)
	return signerKey, cert, err
}

// SigningCertificate returns the self-signed test certificate whose key signs the instance
// identity document (signature, pkcs7 and rsa2048). Use it where AWS's per-region certificate
// would be used. It is the same for every Server in the process; nil if the key could not be
// made.
func (s *Server) SigningCertificate() *x509.Certificate {
	_, cert, err := signer()
	if err != nil {
		return nil
	}
	return cert
}

// identity holds the rendered identity document and its signatures for one configuration.
type identity struct {
	doc, signature, pkcs7 []byte
	err                   error
}

// identityPart returns one of dynamic/instance-identity/{document,signature,pkcs7,rsa2048}.
// The document and signatures are made on first use, so that servers that never serve them never
// wait for the key.
func (st *state) identityPart(start time.Time, name string) ([]byte, bool) {
	st.identOnce.Do(func() { st.ident = makeIdentity(&st.cfg, start) })
	if st.ident.err != nil {
		return nil, false
	}
	switch name {
	case "document":
		return st.ident.doc, true
	case "signature":
		return st.ident.signature, true
	case "pkcs7", "rsa2048":
		return st.ident.pkcs7, true
	}
	return nil, false
}

// identityDocument renders the document the way IMDS does (member order, " : " separators,
// nulls), since clients verify signatures over these exact bytes.
func identityDocument(c *Config, start time.Time) []byte {
	return prettyJSON(
		kv{"accountId", c.AccountID},
		kv{"architecture", c.Architecture},
		kv{"availabilityZone", c.AvailabilityZone},
		kv{"billingProducts", nil},
		kv{"devpayProductCodes", nil},
		kv{"marketplaceProductCodes", nil},
		kv{"imageId", c.AMIID},
		kv{"instanceId", c.InstanceID},
		kv{"instanceType", c.InstanceType},
		kv{"kernelId", nil},
		kv{"pendingTime", imdsTime(start)},
		kv{"privateIp", c.LocalIPv4},
		kv{"ramdiskId", nil},
		kv{"region", c.Region},
		kv{"version", "2017-09-30"},
	)
}

// makeIdentity renders and signs the document. signature is base64 of an RSA PKCS#1 v1.5
// SHA-256 signature over the document bytes. pkcs7 and rsa2048 are both a real PKCS#7
// SignedData (base64 DER in 64-character lines, no PEM armour, like IMDS) that embeds the
// document and the test certificate and is signed with SHA-256 and the same key; on EC2, pkcs7
// and rsa2048 are signed with different AWS keys and algorithms, which a test key cannot imitate.
func makeIdentity(c *Config, start time.Time) identity {
	key, cert, err := signer()
	if err != nil {
		return identity{err: err}
	}
	doc := identityDocument(c, start)
	sum := sha256.Sum256(doc)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return identity{err: err}
	}
	p7, err := signedData(doc, sig, cert)
	if err != nil {
		return identity{err: err}
	}
	return identity{
		doc:       doc,
		signature: []byte(base64.StdEncoding.EncodeToString(sig)),
		pkcs7:     []byte(wrap64(base64.StdEncoding.EncodeToString(p7))),
	}
}

func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64])
		b.WriteByte('\n')
		s = s[64:]
	}
	b.WriteString(s)
	return b.String()
}

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
)

// The PKCS#7 (RFC 2315) structures, reduced to what one signer without authenticated
// attributes needs.
type p7ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"optional"` // [0] EXPLICIT, built by hand
}

type p7SignedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo      p7ContentInfo
	Certificates     asn1.RawValue  `asn1:"optional"` // [0] IMPLICIT SET OF Certificate
	SignerInfos      []p7SignerInfo `asn1:"set"`
}

type p7SignerInfo struct {
	Version                   int
	IssuerAndSerialNumber     p7IssuerAndSerial
	DigestAlgorithm           pkix.AlgorithmIdentifier
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
}

type p7IssuerAndSerial struct {
	Issuer       asn1.RawValue
	SerialNumber *big.Int
}

// explicit0 wraps DER bytes in a context-specific [0] constructed tag.
func explicit0(der []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
}

// signedData builds a DER PKCS#7 SignedData that carries content, the certificate and sig (the
// RSA signature over SHA-256(content); without authenticated attributes RFC 2315 signs the
// content digest directly).
func signedData(content, sig []byte, cert *x509.Certificate) ([]byte, error) {
	if cert == nil {
		return nil, errors.New("no certificate")
	}
	octets, err := asn1.Marshal(content)
	if err != nil {
		return nil, err
	}
	sha := pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
	sd := p7SignedData{
		Version:          1,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{sha},
		ContentInfo:      p7ContentInfo{ContentType: oidData, Content: explicit0(octets)},
		Certificates:     explicit0(cert.Raw),
		SignerInfos: []p7SignerInfo{{
			Version: 1,
			IssuerAndSerialNumber: p7IssuerAndSerial{
				Issuer:       asn1.RawValue{FullBytes: cert.RawIssuer},
				SerialNumber: cert.SerialNumber,
			},
			DigestAlgorithm: sha,
			DigestEncryptionAlgorithm: pkix.AlgorithmIdentifier{
				Algorithm: oidRSAEncryption, Parameters: asn1.NullRawValue,
			},
			EncryptedDigest: sig,
		}},
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(p7ContentInfo{ContentType: oidSignedData, Content: explicit0(inner)})
}

// ForeignCertificate returns a self-signed certificate whose key signed nothing the emulator
// serves: verifying an identity document against it must fail. Each call makes a new key.
func ForeignCertificate() (*x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the emulator"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
