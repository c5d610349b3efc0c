package nldump

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetryDump(t *testing.T) {
	other := errors.New("permission denied")
	for _, tc := range []struct {
		name      string
		answers   []error // one per call; the last repeats
		wantCalls int
		wantErr   error
		wantValue int
	}{
		{"first dump whole", []error{nil}, 1, nil, 1},
		{"interrupted twice", []error{netlink.ErrDumpInterrupted, netlink.ErrDumpInterrupted, nil}, 3, nil, 3},
		{"another error is not retried", []error{other}, 1, other, 1},
		{"always interrupted", []error{netlink.ErrDumpInterrupted}, Tries, netlink.ErrDumpInterrupted, Tries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := Retry(func() (int, error) {
				calls++
				return calls, tc.answers[min(calls, len(tc.answers))-1]
			})
			if calls != tc.wantCalls || v != tc.wantValue || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Retry: %d calls, value %d, error %v; want %d calls, value %d, error %v",
					calls, v, err, tc.wantCalls, tc.wantValue, tc.wantErr)
			}
		})
	}
}
