// Package demobackend is a small authoritative server for the dnsfront.test zone, started
// in-process when the configuration asks for it, so that a development setup answers
// without internet. dnsfront reaches it through an ordinary backend entry, over the same
// forwarding path as any real resolver.
//
// Concurrency rule: the server runs on miekg/dns's own goroutines; its zone is immutable.
package demobackend

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Zone is the demo zone's apex.
const Zone = "dnsfront.test."

var records = []string{
	"dnsfront.test. 3600 IN SOA ns.dnsfront.test. hostmaster.dnsfront.test. 1 7200 3600 1209600 300",
	"dnsfront.test. 3600 IN NS ns.dnsfront.test.",
	"ns.dnsfront.test. 3600 IN A 192.0.2.53",
	"www.dnsfront.test. 300 IN A 192.0.2.1",
	"www.dnsfront.test. 300 IN AAAA 2001:db8::1",
	"dns.dnsfront.test. 300 IN A 127.0.0.1",
	"txt.dnsfront.test. 300 IN TXT \"dnsfront demo backend\"",
}

// Server serves the demo zone over UDP and TCP.
type Server struct {
	udp, tcp *dns.Server
	zone     map[string][]dns.RR // owner name → records
	soa      dns.RR
	wg       sync.WaitGroup
}

// Start listens on addr (UDP and TCP) and serves until Shutdown.
func Start(addr string) (*Server, error) {
	s := &Server{zone: map[string][]dns.RR{}}
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			return nil, fmt.Errorf("demobackend: %v", err)
		}
		name := strings.ToLower(rr.Header().Name)
		s.zone[name] = append(s.zone[name], rr)
		if rr.Header().Rrtype == dns.TypeSOA {
			s.soa = rr
		}
	}
	// A large TXT set makes answers that exceed 512 bytes, to exercise truncation.
	for i := range 20 {
		rr, _ := dns.NewRR(fmt.Sprintf("big.dnsfront.test. 300 IN TXT \"%02d %s\"", i, strings.Repeat("x", 60)))
		s.zone["big.dnsfront.test."] = append(s.zone["big.dnsfront.test."], rr)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("demobackend: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("demobackend: %w", err)
	}
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h, UDPSize: 65535}
	s.tcp = &dns.Server{Listener: ln, Handler: h}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = srv.ActivateAndServe() }()
	}
	return s, nil
}

// Addr returns the UDP address served.
func (s *Server) Addr() string { return s.udp.PacketConn.LocalAddr().String() }

// Shutdown stops both listeners.
func (s *Server) Shutdown(ctx context.Context) error {
	_ = s.udp.ShutdownContext(ctx)
	_ = s.tcp.ShutdownContext(ctx)
	s.wg.Wait()
	return nil
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if !dns.IsSubDomain(Zone, name) {
		m.Authoritative = false
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	rrs, exists := s.zone[name]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
			c := dns.Copy(rr)
			c.Header().Name = q.Name
			m.Answer = append(m.Answer, c)
		}
	}
	if len(m.Answer) == 0 {
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = []dns.RR{s.soa}
	}
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}
