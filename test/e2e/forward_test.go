package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var exampleRecords = []string{
	"www.example.test. 300 IN A 198.51.100.7",
	"www.example.test. 300 IN A 198.51.100.8",
	"www.example.test. 300 IN AAAA 2001:db8::7",
	"txt.example.test. 300 IN TXT \"hello from the backend\"",
}

// TestForwardUDPAndTCP forwards to a real resolver process over UDP and TCP and checks the
// answers of dig, kdig and a Go client against the backend's records.
func TestForwardUDPAndTCP(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: exampleRecords})
	d := startFE(t, do53FE(be.Addr))
	addr := d.Addr("dns")
	wantA := []string{"198.51.100.7", "198.51.100.8"}

	for _, tcp := range []bool{false, true} {
		proto, flag := "udp", "+notcp"
		if tcp {
			proto, flag = "tcp", "+tcp"
		}
		t.Run("dig/"+proto, func(t *testing.T) {
			got := shortLines(Dig(t, addr, flag, "+short", "www.example.test", "A"))
			if !slices.Equal(got, wantA) {
				t.Errorf("dig %s A = %q, want %q", flag, got, wantA)
			}
			got = shortLines(Dig(t, addr, flag, "+short", "WWW.Example.TEST", "AAAA"))
			if !slices.Equal(got, []string{"2001:db8::7"}) {
				t.Errorf("dig %s AAAA (mixed case) = %q", flag, got)
			}
			out := Dig(t, addr, flag, "missing.example.test", "A")
			if !strings.Contains(out, "status: NXDOMAIN") {
				t.Errorf("dig %s missing name: want NXDOMAIN, got\n%s", flag, out)
			}
		})
		t.Run("kdig/"+proto, func(t *testing.T) {
			got := shortLines(Kdig(t, addr, flag, "+short", "www.example.test", "A"))
			if !slices.Equal(got, wantA) {
				t.Errorf("kdig %s A = %q, want %q", flag, got, wantA)
			}
			got = shortLines(Kdig(t, addr, flag, "+short", "txt.example.test", "TXT"))
			if !slices.Equal(got, []string{`"hello from the backend"`}) {
				t.Errorf("kdig %s TXT = %q", flag, got)
			}
		})
		t.Run("go/"+proto, func(t *testing.T) {
			q := NewQuery("www.example.test", dns.TypeA)
			r := MustExchange(t, proto, addr, q)
			if r.Id != q.Id {
				t.Errorf("answer ID %d, query ID %d", r.Id, q.Id)
			}
			if r.Rcode != dns.RcodeSuccess || !r.Response || !r.Authoritative {
				t.Errorf("answer header: %v", r.MsgHdr)
			}
			got := AnswerStrings(r)
			slices.Sort(got)
			if !slices.Equal(got, wantA) {
				t.Errorf("answer = %q, want %q", got, wantA)
			}
			if len(r.Question) != 1 || r.Question[0] != q.Question[0] {
				t.Errorf("question %v, want %v", r.Question, q.Question)
			}
		})
	}
	if n := be.Count("udp"); n == 0 {
		t.Error("the backend saw no query over UDP")
	}
	if q := d.Metric(`dnsfront_queries_total{proto="tcp"}`); q < 5 {
		t.Errorf(`dnsfront_queries_total{proto="tcp"} = %v, want at least 5`, q)
	}
}

// shortLines splits +short output into its non-empty lines, sorted.
func shortLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, ";") {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}
