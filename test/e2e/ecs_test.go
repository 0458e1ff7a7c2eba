package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// EDNS Client Subnet (RFC 7871) end to end: the real binary in front of a backend that
// answers every query with a TXT record naming the subnet it received ("none" without
// one) and echoes the option with scope = source prefix (scope 0 for names under
// zero.ecs.test). Neither unbound nor dnsdist echoes a subnet with a chosen scope, so that
// backend is a miekg/dns server; dnsdist, with a Lua rule that names the subnet it
// received in a CNAME, is the real peer that checks what goes on the wire
// (TestECSDnsdistBackend). The clients are dig (+subnet) and miekg/dns.

// ecsEcho is the reflecting backend; it counts the queries per name.
type ecsEcho struct {
	Addr string
	mu   sync.Mutex
	seen map[string][]string // lower-cased qname → the subnets received, in order
}

func startECSEcho(t *testing.T) *ecsEcho {
	t.Helper()
	e := &ecsEcho{seen: map[string][]string{}}
	e.Addr = testutil.StartDNS(t, dns.HandlerFunc(e.serve), testutil.DNSOptions{}).Addr
	return e
}

func (e *ecsEcho) serve(w dns.ResponseWriter, q *dns.Msg) {
	r := new(dns.Msg)
	r.SetReply(q)
	name := strings.ToLower(q.Question[0].Name)
	got := "none"
	var opt *dns.EDNS0_SUBNET
	if o := q.IsEdns0(); o != nil {
		for _, x := range o.Option {
			if s, ok := x.(*dns.EDNS0_SUBNET); ok {
				opt = s
				a, _ := netip.AddrFromSlice(s.Address)
				got = netip.PrefixFrom(a.Unmap(), int(s.SourceNetmask)).Masked().String()
			}
		}
		r.SetEdns0(1232, false)
		if opt != nil {
			back := *opt
			back.SourceScope = opt.SourceNetmask
			if strings.HasSuffix(name, "zero.ecs.test.") {
				back.SourceScope = 0
			}
			r.IsEdns0().Option = append(r.IsEdns0().Option, &back)
		}
	}
	r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: []string{got}})
	e.mu.Lock()
	e.seen[name] = append(e.seen[name], got)
	e.mu.Unlock()
	_ = w.WriteMsg(r)
}

// received returns the subnets the backend saw for name.
func (e *ecsEcho) received(name string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen[dns.Fqdn(strings.ToLower(name))]...)
}

// ecsFE is a dnsfront with Do53 on 127.0.0.1 ("dns") and ::1 ("dns6"), its backend using
// ECS, a packet cache when cache, and extra appended to its configuration.
func ecsFE(t *testing.T, be *ecsEcho, cache bool, extra string) *Dnsfront {
	t.Helper()
	return Start(t, ecsFEYAML(be, cache, extra), nil)
}

// ecsFEYAML is the configuration template of ecsFE.
func ecsFEYAML(be *ecsEcho, cache bool, extra string) string {
	c := feConfig{
		Binds:    []feBind{{Port: "dns", Protocol: "Do53"}, {Port: "dns6", Protocol: "Do53"}},
		Backends: []feBackend{{Name: "echo", Addr: be.Addr}},
	}
	if cache {
		c.Pools = []fePool{{Name: "", Cache: "main"}}
		c.Caches = []string{"{name: main, size: 1000, shards: 2}"}
	}
	y := c.YAML()
	y = strings.Replace(y, "    name: echo\n", "    name: echo\n    use_client_subnet: true\n", 1)
	return y + extra
}

// ecsTXT asks name TXT at addr over network from the local address from (nil: any) with
// the client subnet own (nil: none) and returns the backend's TXT and the ECS option of
// the answer (nil when it has none).
func ecsTXT(t *testing.T, network, addr string, from net.Addr, name string, own *dns.EDNS0_SUBNET, edns bool) (string, *dns.EDNS0_SUBNET) {
	t.Helper()
	q := NewQuery(name, dns.TypeTXT)
	if edns || own != nil {
		q.SetEdns0(1232, false)
		if own != nil {
			q.IsEdns0().Option = append(q.IsEdns0().Option, own)
		}
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: from, Timeout: 5 * time.Second}}
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	if len(r.Answer) != 1 {
		t.Fatalf("%s %s: answer %v", network, name, r)
	}
	var ecs *dns.EDNS0_SUBNET
	if o := r.IsEdns0(); o != nil {
		if !edns && own == nil {
			t.Errorf("%s %s: an OPT record the client did not ask for: %v", network, name, o)
		}
		for _, x := range o.Option {
			if s, ok := x.(*dns.EDNS0_SUBNET); ok {
				ecs = s
			}
		}
	}
	return r.Answer[0].(*dns.TXT).Txt[0], ecs
}

// TestECSBackendSeesClientSubnet: the backend sees the client's /24 (IPv4) or /56
// (IPv6), over UDP and TCP, and the client never sees the option it did not send.
func TestECSBackendSeesClientSubnet(t *testing.T) {
	t.Parallel()
	be := startECSEcho(t)
	d := ecsFE(t, be, false, "")
	for _, c := range []struct {
		port, want string
		from       net.Addr
	}{
		{"dns", "127.0.0.0/24", nil},
		{"dns", "127.0.1.0/24", &net.UDPAddr{IP: net.IPv4(127, 0, 1, 77)}},
		{"dns6", "::/56", nil},
	} {
		for _, network := range []string{"udp", "tcp"} {
			for _, edns := range []bool{false, true} {
				from := c.from
				if from != nil && network == "tcp" {
					from = &net.TCPAddr{IP: from.(*net.UDPAddr).IP}
				}
				got, ecs := ecsTXT(t, network, d.Addr(c.port), from, "plain.ecs.test", nil, edns)
				if got != c.want {
					t.Errorf("%s via %s (EDNS %v): backend saw %s, want %s", network, c.port, edns, got, c.want)
				}
				if ecs != nil {
					t.Errorf("%s via %s: the client got an ECS option it did not send: %v", network, c.port, ecs)
				}
			}
		}
	}
	// dig, a real client, agrees: it sends EDNS without a subnet and sees none back.
	out := Dig(t, d.Addr("dns"), "plain.ecs.test", "TXT")
	if !strings.Contains(out, `"127.0.0.0/24"`) || strings.Contains(out, "CLIENT-SUBNET") {
		t.Errorf("dig:\n%s", out)
	}
	out = Dig(t, d.Addr("dns6"), "plain.ecs.test", "TXT")
	if !strings.Contains(out, `"::/56"`) || strings.Contains(out, "CLIENT-SUBNET") {
		t.Errorf("dig over ::1:\n%s", out)
	}
}

// TestECSDigSubnetOverride: a subnet the client sends itself (dig +subnet) goes to the
// backend as sent; with override_existing the client's address replaces it, and the
// client still gets its own subnet back, with the backend's scope.
func TestECSDigSubnetOverride(t *testing.T) {
	t.Parallel()
	be := startECSEcho(t)
	keep := ecsFE(t, be, false, "")
	over := ecsFE(t, be, false, "edns_client_subnet:\n  override_existing: true\n  source_prefix_v4: 20\n")

	out := Dig(t, keep.Addr("dns"), "+subnet=198.51.100.7/32", "keep.ecs.test", "TXT")
	if !strings.Contains(out, `"198.51.100.7/32"`) || !strings.Contains(out, "CLIENT-SUBNET: 198.51.100.7/32/32") {
		t.Errorf("override off:\n%s", out)
	}
	out = Dig(t, over.Addr("dns"), "+subnet=198.51.100.7/32", "over.ecs.test", "TXT")
	if !strings.Contains(out, `"127.0.0.0/20"`) || !strings.Contains(out, "CLIENT-SUBNET: 198.51.100.7/32/20") {
		t.Errorf("override on:\n%s", out)
	}
	// Without a subnet of its own, the client of the overriding front end gets none.
	out = Dig(t, over.Addr("dns"), "over2.ecs.test", "TXT")
	if !strings.Contains(out, `"127.0.0.0/20"`) || strings.Contains(out, "CLIENT-SUBNET") {
		t.Errorf("override on, no client subnet:\n%s", out)
	}
}

// TestECSCacheScopes: answers cached for one subnet are not served to another; an answer
// with scope 0 is served to everyone; the same subnet shares its answer.
func TestECSCacheScopes(t *testing.T) {
	t.Parallel()
	be := startECSEcho(t)
	d := ecsFE(t, be, true, "")
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	a2 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 99)} // the same /24
	b := &net.UDPAddr{IP: net.IPv4(127, 0, 1, 1)}

	// Scope /24: one backend query per subnet.
	for _, c := range []struct {
		from net.Addr
		want string
	}{{a, "127.0.0.0/24"}, {b, "127.0.1.0/24"}, {a2, "127.0.0.0/24"}, {b, "127.0.1.0/24"}} {
		if got, _ := ecsTXT(t, "udp", d.Addr("dns"), c.from, "scoped.ecs.test", nil, true); got != c.want {
			t.Errorf("from %v: got the answer for %s, want %s", c.from, got, c.want)
		}
	}
	if got, _ := ecsTXT(t, "udp", d.Addr("dns6"), nil, "scoped.ecs.test", nil, true); got != "::/56" {
		t.Errorf("from ::1: got the answer for %s", got)
	}
	if got := be.received("scoped.ecs.test"); strings.Join(got, " ") != "127.0.0.0/24 127.0.1.0/24 ::/56" {
		t.Errorf("backend saw %v, want one query per subnet", got)
	}

	// Clients that send their own subnet (not overridden) are kept apart too.
	for _, s := range []string{"192.0.2.0/24", "198.51.100.0/24", "192.0.2.0/24"} {
		p := netip.MustParsePrefix(s)
		own := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
		got, ecs := ecsTXT(t, "udp", d.Addr("dns"), nil, "own.ecs.test", own, true)
		if got != s || ecs == nil || !ecs.Address.Equal(own.Address) {
			t.Errorf("own subnet %s: answer for %s, option %v", s, got, ecs)
		}
	}
	if got := be.received("own.ecs.test"); len(got) != 2 {
		t.Errorf("backend saw %v, want one query per client subnet", got)
	}

	// Scope 0: the first answer serves every subnet, without the option.
	ecsTXT(t, "udp", d.Addr("dns"), a, "zero.ecs.test", nil, true)
	for _, from := range []net.Addr{b, a2} {
		if _, ecs := ecsTXT(t, "udp", d.Addr("dns"), from, "zero.ecs.test", nil, true); ecs != nil {
			t.Errorf("from %v: the shared answer carries %v", from, ecs)
		}
	}
	if _, ecs := ecsTXT(t, "tcp", d.Addr("dns6"), nil, "zero.ecs.test", nil, true); ecs != nil {
		t.Errorf("from ::1: %v", ecs)
	}
	if got := be.received("zero.ecs.test"); len(got) != 1 {
		t.Errorf("backend saw %v, want one query for an answer with scope 0", got)
	}
	if h := metricOf(t, d, "dnsfront_cache_hits_total", `cache="main"`); h != 6 {
		t.Errorf("cache hits %v, want 6", h)
	}
}

// TestECSActions: SetDisableECS, SetECSPrefixLength, SetECS and SetECSOverride change
// what the backend sees for the queries their selectors match, from YAML query_rules.
func TestECSActions(t *testing.T) {
	t.Parallel()
	be := startECSEcho(t)
	d := ecsFE(t, be, false, `query_rules:
  - selector: { type: QNameSuffix, suffixes: [off.ecs.test.] }
    action: { type: SetDisableECS }
  - selector: { type: QNameSuffix, suffixes: [short.ecs.test.] }
    action: { type: SetECSPrefixLength, ipv4: 16, ipv6: 32 }
  - selector: { type: QNameSuffix, suffixes: [fixed.ecs.test.] }
    action: { type: SetECS, ipv4: "192.0.2.0/24", ipv6: "2001:db8::/48" }
  - selector: { type: QNameSuffix, suffixes: [ovr.ecs.test.] }
    action: { type: SetECSOverride, override_existing: true }
`)
	cases := []struct {
		port, name, subnet, want string
	}{
		{"dns", "a.off.ecs.test", "", "none"},
		{"dns", "a.off.ecs.test", "198.51.100.0/24", "198.51.100.0/24"}, // the client's own goes as sent
		{"dns", "a.short.ecs.test", "", "127.0.0.0/16"},
		{"dns6", "a.short.ecs.test", "", "::/32"},
		{"dns", "a.fixed.ecs.test", "", "192.0.2.0/24"},
		{"dns6", "a.fixed.ecs.test", "", "2001:db8::/48"},
		{"dns", "a.ovr.ecs.test", "198.51.100.0/24", "127.0.0.0/24"},
		{"dns", "a.other.ecs.test", "198.51.100.0/24", "198.51.100.0/24"},
	}
	for _, c := range cases {
		args := []string{c.name, "TXT"}
		if c.subnet != "" {
			args = append([]string{"+subnet=" + c.subnet}, args...)
		}
		out := Dig(t, d.Addr(c.port), args...)
		if !strings.Contains(out, `"`+c.want+`"`) {
			t.Errorf("%s via %s (client subnet %q): want the backend to see %s:\n%s", c.name, c.port, c.subnet, c.want, out)
		}
		if c.subnet == "" && strings.Contains(out, "CLIENT-SUBNET") {
			t.Errorf("%s via %s: the client got an option it did not send:\n%s", c.name, c.port, out)
		}
		if c.subnet != "" && !strings.Contains(out, "CLIENT-SUBNET: "+c.subnet) {
			t.Errorf("%s via %s: the client did not get its own subnet back:\n%s", c.name, c.port, out)
		}
	}
}

// ecsDnsdistLua makes dnsdist answer every query with a CNAME that spells the ECS option
// it received: f<family>-s<source prefix>-a<address octets>.ecs.echo., or none.ecs.echo.
const ecsDnsdistLua = `
setSecurityPollSuffix("")
function echoECS(dq)
  local ecs = dq:getEDNSOptions()[8]
  if ecs == nil then return DNSAction.Spoof, "none.ecs.echo." end
  local v = ecs:getValues()[1]
  local parts = {}
  for i = 5, #v do parts[#parts+1] = string.format("%d", string.byte(v, i)) end
  return DNSAction.Spoof, "f" .. string.byte(v, 2) .. "-s" .. string.byte(v, 3) .. "-a" .. table.concat(parts, "-") .. ".ecs.echo."
end
addAction(AllRule(), LuaAction(echoECS))
`

// startDnsdistECSEcho runs dnsdist 1.7.3 as a backend that reflects the ECS option it
// receives (ecsDnsdistLua) until the test ends, and returns its address once it listens.
func startDnsdistECSEcho(t *testing.T) string {
	t.Helper()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(t.TempDir(), "dnsdist.conf")
	WriteFile(t, conf, []byte(fmt.Sprintf("setLocal(%q)\nsetACL({\"127.0.0.0/8\"})\n%s", addr, ecsDnsdistLua)))
	startPeer(t, "dnsdist", []string{"--supervised", "--disable-syslog", "-C", conf}, addr)
	return addr
}

// TestECSDnsdistBackend: dnsdist, as the backend, receives the client's /24 and /56 in
// the ECS option dnsfront adds, over UDP and TCP, and none when a rule disables it.
func TestECSDnsdistBackend(t *testing.T) {
	t.Parallel()
	backend := startDnsdistECSEcho(t)
	c := feConfig{
		Binds:    []feBind{{Port: "dns", Protocol: "Do53"}, {Port: "dns6", Protocol: "Do53"}},
		Backends: []feBackend{{Name: "dnsdist", Addr: backend}},
	}
	y := strings.Replace(c.YAML(), "    name: dnsdist\n", "    name: dnsdist\n    use_client_subnet: true\n", 1)
	d := Start(t, y+"query_rules:\n  - selector: { type: QNameSuffix, suffixes: [off.ecs.test.] }\n    action: { type: SetDisableECS }\n", nil)
	cases := []struct{ port, name, want string }{
		{"dns", "www.ecs.test", "f1-s24-a127-0-0.ecs.echo."},
		{"dns6", "www.ecs.test", "f2-s56-a0-0-0-0-0-0-0.ecs.echo."},
		{"dns", "www.off.ecs.test", "none.ecs.echo."},
	}
	for _, cs := range cases {
		for _, proto := range []string{"+notcp", "+tcp"} {
			out := Dig(t, d.Addr(cs.port), proto, cs.name, "A")
			if !strings.Contains(out, "CNAME\t"+cs.want) {
				t.Errorf("%s via %s (%s): dnsdist did not see %s:\n%s", cs.name, cs.port, proto, cs.want, out)
			}
			if strings.Contains(out, "CLIENT-SUBNET") {
				t.Errorf("%s via %s (%s): the client got an option it did not send:\n%s", cs.name, cs.port, proto, out)
			}
		}
	}
}

// TestECSReload: a reload changes the prefix lengths and override for the next queries,
// as dnsdist's runtime setters do.
func TestECSReload(t *testing.T) {
	t.Parallel()
	be := startECSEcho(t)
	d := ecsFE(t, be, false, "")
	if got, _ := ecsTXT(t, "udp", d.Addr("dns"), nil, "before.ecs.test", nil, true); got != "127.0.0.0/24" {
		t.Fatalf("before the reload the backend saw %s", got)
	}
	d.Rewrite(ecsFEYAML(be, false, "edns_client_subnet: {source_prefix_v4: 16, source_prefix_v6: 48}\n"), nil)
	reload(t, d)
	if got, _ := ecsTXT(t, "udp", d.Addr("dns"), nil, "after.ecs.test", nil, true); got != "127.0.0.0/16" {
		t.Errorf("after the reload the backend saw %s, want 127.0.0.0/16", got)
	}
	if got, _ := ecsTXT(t, "tcp", d.Addr("dns6"), nil, "after.ecs.test", nil, false); got != "::/48" {
		t.Errorf("after the reload the backend saw %s over ::1, want ::/48", got)
	}
}

// TestECSProxyProtocolClient: behind a proxy that sends a PROXY v2 header (kdig +proxy),
// the subnet is the header's client, over UDP and TCP, not the proxy's.
func TestECSProxyProtocolClient(t *testing.T) {
	t.Parallel()
	be := startECSEcho(t)
	d := ecsFE(t, be, false, "proxy_protocol:\n  acl: [\"127.0.0.1/32\", \"::1/128\"]\n")
	for _, c := range []struct{ port, proxy, want string }{
		{"dns", "198.51.100.7-127.0.0.1", "198.51.100.0/24"},
		{"dns6", "2001:db8:aa:bbcc::1-::1", "2001:db8:aa:bb00::/56"},
	} {
		for _, proto := range []string{"+notcp", "+tcp"} {
			out := Kdig(t, d.Addr(c.port), "+proxy="+c.proxy, proto, "pp.ecs.test", "TXT")
			if !strings.Contains(out, `"`+c.want+`"`) {
				t.Errorf("%s %s via %s: want the backend to see %s:\n%s", c.proxy, proto, c.port, c.want, out)
			}
		}
	}
}
