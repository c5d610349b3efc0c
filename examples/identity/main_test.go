package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imdsv2/imdsv2/imds"
	"github.com/imdsv2/imdsv2/imds/imdstest"
)

// testOptions points the client at the emulator, ignores the caller's AWS_* environment, and
// gives a loaded test machine generous time limits: these tests check answers, not speed.
func testOptions(url string) imds.Options {
	return imds.Options{Endpoint: url, Getenv: func(string) string { return "" },
		Timeout: time.Minute, TokenTimeout: 30 * time.Second, RequestTimeout: 30 * time.Second, DialTimeout: 10 * time.Second}
}

func newServer(t *testing.T) *imdstest.Server {
	srv := imdstest.NewServer(imdstest.Config{InstanceID: "i-0example00000001", Region: "ap-south-1",
		HTTPTokens: imdstest.TokensRequired})
	t.Cleanup(srv.Close)
	return srv
}

func TestRun(t *testing.T) {
	srv := newServer(t)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), testOptions(srv.URL()), nil, &out))
	assert.Equal(t, "instance i-0example00000001 (t3.micro) in ap-south-1 (ap-south-1a), account 123456789012, "+
		"image ami-0123456789abcdef0; signature not checked (use -cert)\n", out.String())
}

func TestRunVerified(t *testing.T) {
	srv := newServer(t)
	cert := srv.SigningCertificate()
	require.NotNil(t, cert)

	// The certificate goes through a PEM file, as a user would give it.
	path := filepath.Join(t.TempDir(), "aws.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600))
	loaded, err := readCert(path)
	require.NoError(t, err)

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), testOptions(srv.URL()), loaded, &out))
	assert.Contains(t, out.String(), "i-0example00000001")
	assert.Contains(t, out.String(), "signature verified")

	// A certificate with another key must be refused, not printed.
	out.Reset()
	err = run(context.Background(), testOptions(srv.URL()), foreignCert(t), &out)
	assert.True(t, errors.Is(err, imds.ErrBadSignature), "%v", err)
	assert.Empty(t, out.String())
}

func TestReadCertErrors(t *testing.T) {
	_, err := readCert(filepath.Join(t.TempDir(), "missing.pem"))
	assert.Error(t, err)
	path := filepath.Join(t.TempDir(), "junk.pem")
	require.NoError(t, os.WriteFile(path, []byte("not a certificate"), 0o600))
	_, err = readCert(path)
	assert.ErrorContains(t, err, "no PEM CERTIFICATE block")
}

func foreignCert(t *testing.T) *x509.Certificate {
	t.Helper()
	cert, err := imdstest.ForeignCertificate()
	require.NoError(t, err)
	return cert
}
