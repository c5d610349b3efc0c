package imdstest

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// versions are the API versions IMDS lists at "/". Every one of them serves the same tree here;
// the real service leaves newer paths out of older versions, which no current client relies on.
var versions = []string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
	"2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25",
	"2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02", "2018-03-28",
	"2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23",
	"2021-07-15", "2022-09-24", "2024-04-11", "latest",
}

// leafFunc produces a leaf's content at time now; ok false means the path does not exist (yet).
type leafFunc func(now time.Time) (body []byte, ok bool)

// node is a directory (kids) or a leaf (leaf != nil) of the metadata tree.
type node struct {
	kids  map[string]*node
	names []string // sorted, for listings
	leaf  leafFunc
	// bare lists child directories without the trailing "/", as IMDS does at /latest/.
	bare bool
}

func newDir() *node { return &node{kids: map[string]*node{}} }

// add creates the leaf at the slash-separated path p, with the directories above it.
func (n *node) add(p string, f leafFunc) {
	dir, name, _ := cutLast(p)
	if dir != "" {
		n = n.dir(dir)
	}
	n.child(name, &node{leaf: f})
}

// dir creates the directory at p (one that exists even when nothing is in it), with the
// directories above it, and returns it.
func (n *node) dir(p string) *node {
	for seg := range strings.SplitSeq(p, "/") {
		n = n.child(seg, nil)
	}
	return n
}

// child returns n's child called name, made from k (a new directory when k is nil) when n has
// none by that name yet.
func (n *node) child(name string, k *node) *node {
	if c, ok := n.kids[name]; ok {
		return c
	}
	if k == nil {
		k = newDir()
	}
	n.kids[name] = k
	i, _ := slices.BinarySearch(n.names, name)
	n.names = slices.Insert(n.names, i, name)
	return k
}

// cutLast splits a slash-separated path at its last slash.
func cutLast(p string) (dir, name string, found bool) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:], true
	}
	return "", p, false
}

// list returns the directory listing: one name per line, directories with a trailing "/", no
// final newline.
func (n *node) list(now time.Time) []byte {
	var b []byte
	for _, name := range n.names {
		k := n.kids[name]
		if k.leaf != nil {
			if _, ok := k.leaf(now); !ok {
				continue
			}
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, name...)
		if k.leaf == nil && !n.bare {
			b = append(b, '/')
		}
	}
	if b == nil {
		b = []byte{}
	}
	return b
}

// splitVersion splits "/latest/meta-data/x" into "latest" and "meta-data/x".
func splitVersion(p string) (version, rest string) {
	p, ok := strings.CutPrefix(p, "/")
	if !ok {
		return "", ""
	}
	version, rest, _ = strings.Cut(p, "/")
	return version, rest
}

func knownVersion(v string) bool { return slices.Contains(versions, v) }

// lookup resolves a URL path. A path ending in "/" must name a directory; a directory named
// without the slash is listed too, as IMDS does. Unverified: a leaf named with a trailing slash
// is 404 here.
func (st *state) lookup(p string, now time.Time) ([]byte, bool) {
	if p == "/" {
		return []byte(strings.Join(versions, "\n")), true
	}
	ver, rest := splitVersion(p)
	if !knownVersion(ver) {
		return nil, false
	}
	wantDir := strings.HasSuffix(rest, "/")
	rest = strings.TrimSuffix(rest, "/")
	n := st.tree
	if rest != "" {
		for seg := range strings.SplitSeq(rest, "/") {
			k, ok := n.kids[seg]
			if !ok || seg == "" || n.leaf != nil {
				return nil, false
			}
			n = k
		}
	}
	if n.leaf != nil {
		if wantDir {
			return nil, false
		}
		return n.leaf(now)
	}
	return n.list(now), true
}

// static is a leaf with fixed content.
func static(v string) leafFunc {
	b := []byte(v)
	return func(time.Time) ([]byte, bool) { return b, true }
}

// after is a leaf that exists once d has passed since start; body gets the moment it appeared.
func after(start time.Time, d time.Duration, body func(at time.Time) []byte) leafFunc {
	at := start.Add(d)
	return func(now time.Time) ([]byte, bool) {
		if now.Before(at) {
			return nil, false
		}
		return body(at), true
	}
}

// imdsTime is the timestamp format of IMDS JSON documents.
func imdsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// buildTree lays out the metadata tree of one configuration snapshot.
func (s *Server) buildTree(st *state) *node {
	c := &st.cfg
	root := newDir()
	root.bare = true
	md := root.dir("meta-data")
	dyn := root.dir("dynamic")
	if c.UserData != nil {
		ud := c.UserData
		root.add("user-data", func(time.Time) ([]byte, bool) { return ud, true })
	}
	addInstance(md, c)
	addInterface(md, c)
	s.addNotices(md, c)
	if c.TargetLifecycleState != "" {
		md.add("autoscaling/target-lifecycle-state", static(c.TargetLifecycleState))
	}
	if c.TagsEnabled {
		addTags(md, c.Tags)
	}
	if c.RoleName != "" && !strings.Contains(c.RoleName, "/") {
		s.addIAM(md, c)
	}
	for _, name := range []string{"document", "signature", "pkcs7", "rsa2048"} {
		dyn.add("instance-identity/"+name, func(time.Time) ([]byte, bool) {
			return st.identityPart(s.start, name)
		})
	}
	return root
}

// addInstance adds the instance's own fixed leaves: identity, placement, addresses, services
// and scheduled maintenance.
func addInstance(md *node, c *Config) {
	lifeCycle := "on-demand"
	if c.SpotActionAfter > 0 {
		lifeCycle = "spot"
	}
	for p, v := range map[string]string{
		"ami-id":                       c.AMIID,
		"ami-launch-index":             "0",
		"ami-manifest-path":            "(unknown)",
		"hostname":                     c.Hostname,
		"instance-id":                  c.InstanceID,
		"instance-life-cycle":          lifeCycle,
		"instance-type":                c.InstanceType,
		"local-hostname":               c.LocalHostname,
		"local-ipv4":                   c.LocalIPv4,
		"mac":                          c.MAC,
		"reservation-id":               "r-0123456789abcdef0",
		"security-groups":              strings.Join(c.SecurityGroups, "\n"),
		"placement/availability-zone":  c.AvailabilityZone,
		"placement/region":             c.Region,
		"services/domain":              "amazonaws.com",
		"services/partition":           partition(c.Region),
		"events/maintenance/history":   "[]",
		"events/maintenance/scheduled": scheduledJSON(c.ScheduledEvents),
	} {
		md.add(p, static(v))
	}
	if c.IPv6 != "" {
		md.add("ipv6", static(c.IPv6))
	}
}

// addNotices adds the leaves that appear while the server runs: the rebalance recommendation
// and the spot interruption notice, each once its delay has passed since the server started.
func (s *Server) addNotices(md *node, c *Config) {
	md.dir("events/recommendations")
	if c.RebalanceAfter > 0 {
		md.add("events/recommendations/rebalance", after(s.start, c.RebalanceAfter, func(at time.Time) []byte {
			return prettyJSON(kv{"noticeTime", imdsTime(at)})
		}))
	}
	if c.SpotActionAfter > 0 {
		action := c.SpotAction
		md.add("spot/instance-action", after(s.start, c.SpotActionAfter, func(at time.Time) []byte {
			return prettyJSON(kv{"action", action}, kv{"time", imdsTime(at.Add(2 * time.Minute))})
		}))
		if action == "terminate" {
			md.add("spot/termination-time", after(s.start, c.SpotActionAfter, func(at time.Time) []byte {
				return []byte(imdsTime(at.Add(2 * time.Minute)))
			}))
		}
	}
}

// addTags adds the instance's tags; a key IMDS cannot serve as one path segment is left out.
func addTags(md *node, tags map[string]string) {
	md.dir("tags/instance")
	for k, v := range tags {
		if k == "" || strings.Contains(k, "/") {
			continue
		}
		md.add("tags/instance/"+k, static(v))
	}
}

func addInterface(md *node, c *Config) {
	base := "network/interfaces/macs/" + c.MAC + "/"
	for p, v := range map[string]string{
		"device-number":          "0",
		"interface-id":           c.InterfaceID,
		"local-hostname":         c.LocalHostname,
		"local-ipv4s":            c.LocalIPv4,
		"mac":                    c.MAC,
		"owner-id":               c.AccountID,
		"security-groups":        strings.Join(c.SecurityGroups, "\n"),
		"subnet-id":              c.SubnetID,
		"subnet-ipv4-cidr-block": c.SubnetCIDR,
		"vpc-id":                 c.VPCID,
		"vpc-ipv4-cidr-block":    c.VPCCIDR,
		"vpc-ipv4-cidr-blocks":   c.VPCCIDR,
	} {
		md.add(base+p, static(v))
	}
	if c.IPv6 != "" {
		md.add(base+"ipv6s", static(c.IPv6))
	}
}

// partition returns the AWS partition of a region, for ARNs and services/partition.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// scheduledJSON renders maintenance events the way IMDS does, dates as "2 Jan 2006 15:04:05 GMT".
func scheduledJSON(evs []ScheduledEvent) string {
	type event struct {
		NotBefore   string
		Code        string
		Description string
		EventID     string `json:"EventId"`
		NotAfter    string `json:",omitempty"`
		State       string
	}
	out := make([]event, 0, len(evs))
	for _, e := range evs {
		ev := event{Code: e.Code, Description: e.Description, EventID: e.EventID, State: e.State}
		if !e.NotBefore.IsZero() {
			ev.NotBefore = e.NotBefore.UTC().Format("2 Jan 2006 15:04:05 GMT")
		}
		if !e.NotAfter.IsZero() {
			ev.NotAfter = e.NotAfter.UTC().Format("2 Jan 2006 15:04:05 GMT")
		}
		out = append(out, ev)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil { // strings only: cannot happen
		return "[]"
	}
	return string(b)
}

// kv is one member of a JSON object whose member order matters to a faithful rendering.
type kv struct {
	k string
	v any // string or nil (null)
}

// prettyJSON renders an object in IMDS's style: two-space indent and " : " separators.
func prettyJSON(members ...kv) []byte {
	b := []byte("{\n")
	for i, m := range members {
		k, _ := json.Marshal(m.k)
		v, err := json.Marshal(m.v)
		if err != nil {
			v = []byte("null")
		}
		b = append(b, "  "...)
		b = append(b, k...)
		b = append(b, " : "...)
		b = append(b, v...)
		if i < len(members)-1 {
			b = append(b, ',')
		}
		b = append(b, '\n')
	}
	return append(b, '}')
}
