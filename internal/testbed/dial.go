package testbed

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DialContext returns a dial function whose sockets are created inside the namespace ns, for
// http.Transport.DialContext and the like.
//
// It exists because moving a goroutine's thread into a namespace is not enough for net/http: the
// transport dials on goroutines of its own, which run on other threads, in the process's own
// namespace. A socket belongs to the namespace it was created in, so creating it here, on a
// thread inside ns, keeps the connection there wherever it is used afterwards.
func (b *Bed) DialContext(ns NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		// A literal address makes net.Dialer dial on the calling goroutine: no resolver and no
		// parallel attempts on other threads.
		if net.ParseIP(host) == nil {
			return nil, fmt.Errorf("testbed: dial %s: only literal IP addresses can be dialled inside a namespace", addr)
		}
		var c net.Conn
		err = b.Do(ns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// HTTPClient returns an HTTP client whose connections are made inside the namespace ns. It uses
// no proxy and no keep-alive, so every request opens a connection of its own in ns.
func (b *Bed) HTTPClient(ns NS, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       b.DialContext(ns),
			DisableKeepAlives: true,
		},
	}
}
