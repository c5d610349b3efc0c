package imds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Credentials are the temporary credentials of the instance profile's role. String, GoString,
// every fmt verb and slog show only a prefix of the access key id; SecretAccessKey and Token are
// never printed. json.Marshal, however, writes them all: do not marshal Credentials into logs.
type Credentials struct {
	// RoleName is the role the credentials belong to.
	RoleName string
	// Code is "Success" for usable credentials.
	Code string
	// Type is "AWS-HMAC".
	Type            string
	AccessKeyID     string
	SecretAccessKey string
	Token           string
	// Expiration is when the credentials stop working. IMDS offers new ones at least five
	// minutes before.
	Expiration time.Time
	// LastUpdated is when IMDS obtained them.
	LastUpdated time.Time
}

// String describes the credentials without their secrets.
func (c Credentials) String() string {
	return "imds.Credentials{RoleName: " + strconv.Quote(c.RoleName) + ", AccessKeyID: " +
		strconv.Quote(maskKeyID(c.AccessKeyID)) + ", SecretAccessKey: " + redacted + ", Token: " +
		redacted + ", Expiration: " + c.Expiration.Format(time.RFC3339) + "}"
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// Format prints String for every verb, so that no format reaches the fields.
func (c Credentials) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue keeps the secrets out of slog output.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// maskKeyID keeps the first four characters (ASIA, AKIA: the kind of key) and hides the rest.
func maskKeyID(id string) string {
	if len(id) <= 4 {
		return id
	}
	return id[:4] + strings.Repeat("*", min(len(id)-4, 16))
}

// IAMRole returns the name of the role of the instance profile. No instance profile is
// ErrNotFound.
func (c *Client) IAMRole(ctx context.Context) (string, error) {
	return c.iamRole(ctx, "IAMRole")
}

// iamRole is IAMRole for the Client method op.
func (c *Client) iamRole(ctx context.Context, op string) (string, error) {
	roles, err := c.list(ctx, op, pathRoles)
	if errors.Is(err, ErrNotFound) {
		return "", noRole(err)
	}
	if err != nil {
		return "", err
	}
	for _, r := range roles {
		if r = strings.TrimSuffix(r, "/"); r != "" {
			return r, nil
		}
	}
	return "", newError(KindNotFound, http.MethodGet, pathRoles, c.baseURL(), http.StatusOK, nil,
		"the list of roles is empty: "+adviceNoRole)
}

const adviceNoRole = "no IAM instance profile is attached to this instance; attach one: aws ec2 " +
	"associate-iam-instance-profile --instance-id <id> --iam-instance-profile Name=<profile>"

func noRole(err error) error {
	return withMessage(err, KindNotFound, "answered 404 Not Found: "+adviceNoRole)
}

// IAMCredentials returns the current credentials of the instance profile's role. A 200 answer
// whose Code is not "Success" (e.g. the role cannot be assumed) is ErrCredentials.
func (c *Client) IAMCredentials(ctx context.Context) (*Credentials, error) {
	role, err := c.iamRole(ctx, "IAMCredentials")
	if err != nil {
		return nil, err
	}
	p, err := treePath(pathRoles, role)
	if err != nil {
		return nil, malformed(http.MethodGet, pathRoles, c.baseURL(), "role name", errors.New("role name "+
			strconv.Quote(role)+" is not a usable path segment"))
	}
	b, err := c.get(ctx, "IAMCredentials", p)
	if errors.Is(err, ErrNotFound) {
		return nil, noRole(err)
	}
	if err != nil {
		return nil, err
	}
	cr, perr := parseCredentials(b)
	var ce *codeError
	switch {
	case errors.As(perr, &ce):
		return nil, newError(KindCredentials, http.MethodGet, p, c.baseURL(), http.StatusOK, perr,
			"IMDS could not provide credentials for role "+strconv.Quote(role)+": "+perr.Error()+
				"; check that the role exists and its trust policy lets ec2.amazonaws.com assume it, "+
				"then re-associate the instance profile")
	case perr != nil:
		return nil, malformed(http.MethodGet, p, c.baseURL(), "credentials document", perr)
	}
	cr.RoleName = role
	return cr, nil
}

// codeError is a credentials document whose Code is not Success.
type codeError struct{ code, message string }

func (e *codeError) Error() string {
	s := "Code " + strconv.Quote(e.code)
	if e.message != "" {
		s += ", Message " + strconv.Quote(e.message)
	}
	return s
}

// maxCodeMessage bounds how much of IMDS's failure message is repeated in an error.
const maxCodeMessage = 200

// parseCredentials decodes a credentials document. Errors never quote the document.
func parseCredentials(b []byte) (*Credentials, error) {
	var raw struct {
		Code            string
		Message         string
		Type            string
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string
		Token           string
		Expiration      time.Time
		LastUpdated     time.Time
	}
	if err := strictJSON(b, &raw); err != nil {
		return nil, err
	}
	if !strings.EqualFold(raw.Code, "Success") {
		if raw.Code == "" {
			return nil, errors.New("Code missing")
		}
		msg := raw.Message
		if len(msg) > maxCodeMessage {
			msg = msg[:maxCodeMessage] + "..."
		}
		return nil, &codeError{code: raw.Code, message: msg}
	}
	if raw.AccessKeyID == "" || raw.SecretAccessKey == "" || raw.Token == "" || raw.Expiration.IsZero() {
		return nil, errors.New("AccessKeyId, SecretAccessKey, Token or Expiration missing")
	}
	return &Credentials{Code: raw.Code, Type: raw.Type, AccessKeyID: raw.AccessKeyID,
		SecretAccessKey: raw.SecretAccessKey, Token: raw.Token, Expiration: raw.Expiration,
		LastUpdated: raw.LastUpdated}, nil
}
