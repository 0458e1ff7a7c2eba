package bench

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

func TestConnsRamp(t *testing.T) {
	for proto, q := range queryServers(t, func() *dnsHandler { return &dnsHandler{} }) {
		if proto == "udp" {
			continue
		}
		t.Run(proto, func(t *testing.T) {
			o := ConnsOptions{Target: q.Target, Proto: proto, Count: 40, Concurrency: 8, TLS: q.TLS}
			// The servers run in this process, so its own RSS is the server's.
			o.ServerPID = os.Getpid()
			r, err := RunConns(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			m := r.Results.Memory
			if m == nil {
				t.Fatal("no memory readings in the report")
			}
			if m.Open != 40 || r.Results.OK != 40 || r.Results.Errors != 0 {
				t.Errorf("open %d, ok %d, errors %d; want all 40 open", m.Open, r.Results.OK, r.Results.Errors)
			}
			if m.RSSBefore == 0 || m.RSSPeak < m.RSSSteady || m.RSSPeak == 0 {
				t.Errorf("RSS before %d, peak %d, steady %d", m.RSSBefore, m.RSSPeak, m.RSSSteady)
			}
			if r.Kind != "conns" || r.Params.Connections != 40 || r.Params.Protocol != proto {
				t.Errorf("kind %q, params %+v", r.Kind, r.Params)
			}
			var b strings.Builder
			if err := r.WriteTable(&b); err != nil || !strings.Contains(b.String(), "RSS per conn") {
				t.Errorf("table: %v\n%s", err, b.String())
			}
		})
	}
}

// A ramp that cannot open every connection fails: a partial ramp would
// understate the cost per connection.
func TestConnsRampFailsWhenConnectionsFail(t *testing.T) {
	addr := testutil.FreeAddr(t, "127.0.0.1").String()
	_, err := RunConns(context.Background(), ConnsOptions{Target: addr, Proto: "tcp", Count: 3, RunInfo: RunInfo{ServerPID: os.Getpid()}})
	if err == nil || !strings.Contains(err.Error(), "3 of 3 connections failed") {
		t.Fatalf("err = %v, want 3 of 3 connections failed", err)
	}
}

func TestConnsNeedsServerPID(t *testing.T) {
	if _, err := RunConns(context.Background(), ConnsOptions{Target: "127.0.0.1:53", Proto: "tcp", Count: 1}); err == nil || !strings.Contains(err.Error(), "--server-pid") {
		t.Fatalf("err = %v, want a message naming --server-pid", err)
	}
}

func TestParseVmRSS(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		err  string
	}{
		{"Name:\tdnsfront\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nVmData:\t1 kB\n", 12345 * 1024, ""},
		{"Name:\tx\n", 0, "no VmRSS line"},
		{"VmRSS:\tlots kB\n", 0, "VmRSS"},
	} {
		got, err := parseVmRSS("status", strings.NewReader(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}
