// Command caller is a workload of the end-to-end audit test: it talks to IMDS the ways that are
// hard to produce with curl. It runs only inside the test bed's namespaces, started by the test.
//
//	caller sdk-fallback PATH        aws-sdk-go-v2's imds client (falls back to IMDSv1 when the token PUT is refused)
//	caller split PATH               token PUT, then a GET whose token header comes in a second write
//	caller send-exit PATH N         an IMDSv1 GET, then exit at once without reading the answer
//	caller keepalive N PATH...      N IMDSv1 GETs of the paths on one keep-alive connection
//	caller probe                    a GCP metadata probe (Metadata-Flavor: Google)
//	caller load N C PATH            N IMDSv1 GETs of PATH, each on a new connection, C at a time
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/imdsv2/imdsv2/internal/imdsfacts"
)

var host = imdsfacts.AddrPortV4.String()

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: caller MODE ARGS...")
		os.Exit(2)
	}
	var err error
	switch mode, args := os.Args[1], os.Args[2:]; mode {
	case "sdk-fallback":
		err = sdkFallback(args[0])
	case "split":
		err = split(args[0])
	case "send-exit":
		err = sendExit(args[0])
	case "keepalive":
		err = keepAlive(args)
	case "probe":
		err = probe()
	case "load":
		err = load(args)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "caller:", err)
		os.Exit(1)
	}
}

// dial connects with no time-out of its own: a caller starved of CPU (a hundred of them starting
// at once in a VM without KVM) would see its own timer expire before the connection it already
// has, and the harness bounds every caller anyway (it kills those still running after its
// outcome limit).
// dial connects to IMDS; the connection gives up after a minute, so that a lost answer fails
// the test instead of hanging it.
func dial() (net.Conn, error) {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	return c, nil
}

func sdkFallback(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := imds.New(imds.Options{})
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return err
	}
	defer out.Content.Close()
	_, err = io.Copy(io.Discard, out.Content)
	return err
}

// roundTrip writes the request in the given pieces, pausing between them, and reads the answer.
func roundTrip(c net.Conn, r *bufio.Reader, pieces ...string) (*http.Response, []byte, error) {
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(200 * time.Millisecond) // the pieces leave as separate segments
		}
		if _, err := io.WriteString(c, p); err != nil {
			return nil, nil, err
		}
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func split(path string) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	resp, token, err := roundTrip(c, r, "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: e2e-split\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n")
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("token PUT: %s", resp.Status)
	}
	resp, _, err = roundTrip(c, r, "GET "+path+" HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: e2e-split\r\n",
		"X-aws-ec2-metadata-token: "+string(token)+"\r\n\r\n")
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET with the split token header: %s", resp.Status)
	}
	return nil
}

func sendExit(path string) error {
	c, err := dial()
	if err != nil {
		return err
	}
	_, err = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: e2e-send-exit\r\n\r\n")
	if err == nil {
		os.Exit(0) // no read, no close: gone before the answer arrives
	}
	return err
}

func keepAlive(args []string) error {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i := range n {
		path := args[1+i%(len(args)-1)]
		resp, _, err := roundTrip(c, r, "GET "+path+" HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: e2e-keepalive\r\nConnection: keep-alive\r\n\r\n")
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		if resp.Close {
			return fmt.Errorf("request %d: the server closed the connection", i)
		}
	}
	return nil
}

func probe() error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	_, _, err = roundTrip(c, bufio.NewReader(c), "GET /computeMetadata/v1/instance/id HTTP/1.1\r\nHost: metadata.google.internal\r\nMetadata-Flavor: Google\r\nUser-Agent: e2e-probe\r\n\r\n")
	return err
}

func load(args []string) error {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	c, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	req := "GET " + args[2] + " HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: e2e-load\r\nConnection: close\r\n\r\n"
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				conn, err := dial()
				if err != nil {
					errs <- err
					return
				}
				resp, _, err := roundTrip(conn, bufio.NewReader(conn), req)
				conn.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("answer %s", resp.Status)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
