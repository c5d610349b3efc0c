package imds

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/imdsv2/imdsv2/imds/imdstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedaction prints the client, its token, credentials and errors with every common verb
// and through slog, and checks that no token, secret key or session token appears.
func TestRedaction(t *testing.T) {
	srv := newEmulator(t, imdstest.Config{RoleName: "app"})
	var fallbacks []Fallback
	c := newTestClient(t, srv, func(o *Options) {
		relaxed(o)
		o.AllowIMDSv1 = true
		o.TokenTimeout = 300 * time.Millisecond
		o.OnFallback = func(f Fallback) { fallbacks = append(fallbacks, f) }
	})
	ctx := context.Background()
	cr, err := c.IAMCredentials(ctx)
	require.NoError(t, err)
	tok := c.tok.Load()
	require.NotNil(t, tok)
	secrets := []string{tok.value.reveal(), cr.SecretAccessKey, cr.Token}
	for _, s := range secrets {
		require.GreaterOrEqual(t, len(s), 16)
	}

	// Errors, including one on the token path and one from a fallback.
	var errs []error
	_, err = c.Get(ctx, "nope")
	errs = append(errs, err)
	srv.InjectFault(imdstest.Fault{Method: "GET", Kind: imdstest.FaultStatus, Status: 401, Count: 2})
	_, err = c.InstanceID(ctx)
	errs = append(errs, err)
	srv.ClearFaults()
	srv.InjectFault(imdstest.Fault{Method: "PUT", Kind: imdstest.FaultHang})
	c.tok.Store(nil)
	_, err = c.InstanceID(ctx) // falls back
	require.NoError(t, err)
	srv.ClearFaults()
	for _, e := range errs {
		require.Error(t, e)
	}
	require.NotEmpty(t, fallbacks)

	c.tok.Store(tok) // print the client while it holds the token
	values := []any{c, tok, *tok, tok.value, cr, *cr, fallbacks[0]}
	for _, e := range errs {
		values = append(values, e)
	}
	var out bytes.Buffer
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		fmt.Fprintln(&out, v)
	}
	for _, e := range errs {
		out.WriteString(e.Error())
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "client", c, "creds", cr, "credsValue", *cr,
		"token", tok.value)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "client", c, "creds", cr, "token", tok.value)

	for _, s := range secrets {
		assert.NotContains(t, out.String(), s)
		assert.NotContains(t, out.String(), fmt.Sprintf("%x", s))
	}
	assert.Contains(t, out.String(), redacted)
	assert.Contains(t, out.String(), "ASIA", "the kind of key is still visible")
}

func TestSecretFormats(t *testing.T) {
	s := secret("top-secret-value")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		assert.NotContains(t, fmt.Sprintf(verb, s), "top-secret", verb)
	}
	txt, err := s.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, redacted, string(txt))
}
