package imds

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Paths of the typed accessors.
const (
	pathInstanceID   = "/latest/meta-data/instance-id"
	pathRegion       = "/latest/meta-data/placement/region"
	pathAZ           = "/latest/meta-data/placement/availability-zone"
	pathInstanceType = "/latest/meta-data/instance-type"
	pathUserData     = "/latest/user-data"
	pathTags         = "/latest/meta-data/tags/instance/"
	pathSpotAction   = "/latest/meta-data/spot/instance-action"
	pathRebalance    = "/latest/meta-data/events/recommendations/rebalance"
	pathScheduled    = "/latest/meta-data/events/maintenance/scheduled"
	pathRoles        = "/latest/meta-data/iam/security-credentials/"
)

// InstanceID returns the instance id, e.g. "i-0123456789abcdef0".
func (c *Client) InstanceID(ctx context.Context) (string, error) {
	return c.getValue(ctx, "InstanceID", pathInstanceID, "instance id")
}

// Region returns the instance's region, e.g. "eu-west-1".
func (c *Client) Region(ctx context.Context) (string, error) {
	return c.getValue(ctx, "Region", pathRegion, "region")
}

// AvailabilityZone returns the instance's availability zone, e.g. "eu-west-1a".
func (c *Client) AvailabilityZone(ctx context.Context) (string, error) {
	return c.getValue(ctx, "AvailabilityZone", pathAZ, "availability zone")
}

// InstanceType returns the instance type, e.g. "m7g.large".
func (c *Client) InstanceType(ctx context.Context) (string, error) {
	return c.getValue(ctx, "InstanceType", pathInstanceType, "instance type")
}

// getValue reads a one-line value; empty or multi-line answers, and answers with control
// characters or invalid UTF-8 (which no IMDS identifier has, and which would act on the terminal
// of whoever prints the value), are malformed.
func (c *Client) getValue(ctx context.Context, op, p, what string) (string, error) {
	b, err := c.get(ctx, op, p)
	if err != nil {
		return "", err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || len(b) > 255 || bytes.ContainsAny(b, "\r\n\t<") {
		return "", malformed(http.MethodGet, p, c.baseURL(), what, errors.New("not a single short line"))
	}
	if !utf8.Valid(b) || bytes.ContainsFunc(b, notPrintable) {
		return "", malformed(http.MethodGet, p, c.baseURL(), what,
			errors.New("contains a control character, an invisible character or invalid UTF-8"))
	}
	return string(b), nil
}

// notPrintable reports a rune that is not a letter, mark, number, punctuation, symbol or the
// ASCII space: control characters, bidirectional overrides and other invisible runes.
func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

func (c *Client) baseURL() string { return c.cfg.endpoints[c.pref.Load()].base }

// withMessage returns a copy of err (an *Error) with kind and message replaced, to give the
// advice that fits the accessor; other errors are returned as they are.
func withMessage(err error, kind Kind, msg string) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	n := *e
	n.Kind, n.msg = kind, msg
	return &n
}

// UserData returns the instance's user data, decompressed if it is gzip-compressed. No user
// data is ErrNotFound. Treat the result as a secret: it often holds passwords and keys.
func (c *Client) UserData(ctx context.Context) ([]byte, error) {
	b, err := c.get(ctx, "UserData", pathUserData)
	if errors.Is(err, ErrNotFound) {
		return nil, withMessage(err, KindNotFound, "answered 404 Not Found: the instance has no user data")
	}
	if err != nil {
		return nil, err
	}
	out, err := gunzipIfCompressed(b, c.cfg.maxBody)
	switch {
	case err == errTooLarge:
		return nil, newError(KindTooLarge, http.MethodGet, pathUserData, c.baseURL(), http.StatusOK, nil,
			"the decompressed user data is larger than "+strconv.FormatInt(c.cfg.maxBody, 10)+
				" bytes (Options.MaxBodyBytes); raise the limit if this is expected")
	case err != nil:
		return nil, malformed(http.MethodGet, pathUserData, c.baseURL(), "gzip stream", err)
	}
	return out, nil
}

// Tags returns the keys of the instance's tags. Tags must be exposed in metadata
// (InstanceMetadataTags=enabled); otherwise the error is ErrTagsNotEnabled, whose text gives the
// command that enables them.
func (c *Client) Tags(ctx context.Context) ([]string, error) {
	keys, err := c.list(ctx, "Tags", pathTags)
	if errors.Is(err, ErrNotFound) {
		return nil, tagsNotEnabled(err)
	}
	return keys, err
}

// Tag returns the value of the instance tag key. A missing key is ErrNotFound; tags not exposed
// in metadata is ErrTagsNotEnabled.
func (c *Client) Tag(ctx context.Context, key string) (string, error) {
	if key == "" || strings.Contains(key, "/") {
		return "", invalidArgument(http.MethodGet, pathTags, "tag key "+strconv.Quote(key)+
			" cannot be read from metadata: keys that are empty or contain / are not exposed")
	}
	p, err := treePath(pathTags, key)
	if err != nil {
		return "", err
	}
	b, err := c.get(ctx, "Tag", p)
	if errors.Is(err, ErrNotFound) {
		// Tell "no such tag" from "tags not exposed": the directory itself is 404 in the latter.
		if _, lerr := c.get(ctx, "Tag", pathTags); errors.Is(lerr, ErrNotFound) {
			return "", tagsNotEnabled(err)
		}
		return "", withMessage(err, KindNotFound, "the instance has no tag with key "+strconv.Quote(key))
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func tagsNotEnabled(err error) error {
	return withMessage(err, KindTagsNotEnabled,
		"answered 404 Not Found: instance tags are not exposed in metadata; "+adviceTags)
}

// SpotInstanceAction is a scheduled interruption of a Spot Instance.
type SpotInstanceAction struct {
	// Action is "terminate", "stop" or "hibernate".
	Action string `json:"action"`
	// Time is when the action happens (about two minutes after the notice).
	Time time.Time `json:"time"`
}

// SpotInstanceAction returns the pending Spot interruption, or nil, nil when none is scheduled
// (IMDS answers 404 until then). Poll it every few seconds on Spot Instances.
func (c *Client) SpotInstanceAction(ctx context.Context) (*SpotInstanceAction, error) {
	b, err := c.get(ctx, "SpotInstanceAction", pathSpotAction)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a, perr := parseSpotAction(b)
	if perr != nil {
		return nil, malformed(http.MethodGet, pathSpotAction, c.baseURL(), "spot instance action", perr)
	}
	return a, nil
}

func parseSpotAction(b []byte) (*SpotInstanceAction, error) {
	var a SpotInstanceAction
	if err := strictJSON(b, &a); err != nil {
		return nil, err
	}
	if a.Action == "" || a.Time.IsZero() {
		return nil, errors.New("action or time missing")
	}
	return &a, nil
}

// RebalanceRecommendation is a notice that the instance is at elevated risk of Spot interruption.
type RebalanceRecommendation struct {
	// NoticeTime is when the recommendation was issued.
	NoticeTime time.Time `json:"noticeTime"`
}

// RebalanceRecommendation returns the rebalance recommendation, or nil, nil when there is none
// (IMDS answers 404).
func (c *Client) RebalanceRecommendation(ctx context.Context) (*RebalanceRecommendation, error) {
	b, err := c.get(ctx, "RebalanceRecommendation", pathRebalance)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, perr := parseRebalance(b)
	if perr != nil {
		return nil, malformed(http.MethodGet, pathRebalance, c.baseURL(), "rebalance recommendation", perr)
	}
	return r, nil
}

func parseRebalance(b []byte) (*RebalanceRecommendation, error) {
	var r RebalanceRecommendation
	if err := strictJSON(b, &r); err != nil {
		return nil, err
	}
	if r.NoticeTime.IsZero() {
		return nil, errors.New("noticeTime missing")
	}
	return &r, nil
}

// ScheduledEvent is a maintenance event scheduled for the instance.
type ScheduledEvent struct {
	Code        string    // e.g. "system-reboot", "instance-stop", "instance-retirement"
	Description string    // free text from AWS
	EventID     string    // "instance-event-..."
	State       string    // "active", "completed" or "canceled"
	NotBefore   time.Time // earliest start
	NotAfter    time.Time // latest end; zero if not given
	// NotBeforeDeadline is the latest the event can be rescheduled to; zero if not given.
	NotBeforeDeadline time.Time
}

// ScheduledEvents returns the instance's scheduled maintenance events; none is an empty slice.
func (c *Client) ScheduledEvents(ctx context.Context) ([]ScheduledEvent, error) {
	b, err := c.get(ctx, "ScheduledEvents", pathScheduled)
	if errors.Is(err, ErrNotFound) {
		return []ScheduledEvent{}, nil
	}
	if err != nil {
		return nil, err
	}
	evs, perr := parseScheduledEvents(b)
	if perr != nil {
		return nil, malformed(http.MethodGet, pathScheduled, c.baseURL(), "list of scheduled events", perr)
	}
	return evs, nil
}

// eventTimeLayout is how IMDS writes times in scheduled events.
const eventTimeLayout = "2 Jan 2006 15:04:05 GMT"

func parseScheduledEvents(b []byte) ([]ScheduledEvent, error) {
	var raw []struct {
		Code, Description, State string
		EventID                  string `json:"EventId"`
		NotBefore, NotAfter      string
		NotBeforeDeadline        string
	}
	if err := strictJSON(b, &raw); err != nil {
		return nil, err
	}
	out := make([]ScheduledEvent, 0, len(raw))
	for i, r := range raw {
		ev := ScheduledEvent{Code: r.Code, Description: r.Description, EventID: r.EventID, State: r.State}
		for _, f := range []struct {
			name string
			in   string
			out  *time.Time
		}{{"NotBefore", r.NotBefore, &ev.NotBefore}, {"NotAfter", r.NotAfter, &ev.NotAfter},
			{"NotBeforeDeadline", r.NotBeforeDeadline, &ev.NotBeforeDeadline}} {
			if f.in == "" {
				continue
			}
			t, err := time.Parse(eventTimeLayout, f.in)
			if err != nil {
				return nil, errors.New("event " + strconv.Itoa(i+1) + ": " + f.name + " is not a time like \"" +
					eventTimeLayout + "\"")
			}
			*f.out = t
		}
		out = append(out, ev)
	}
	return out, nil
}

// strictJSON decodes exactly one JSON value into v and refuses trailing data. Its errors say
// where the problem is but never quote the input, which may hold secrets.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return errors.New("invalid JSON at byte " + strconv.FormatInt(se.Offset, 10))
	case errors.As(err, &te):
		return errors.New("JSON field " + strconv.Quote(te.Field) + " has type " + te.Value +
			", want " + te.Type.String())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("empty or truncated JSON")
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return errors.New("a time field is not RFC 3339")
	}
	return errors.New("invalid JSON")
}
