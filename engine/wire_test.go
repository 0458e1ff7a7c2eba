package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// withEDNS adds an OPT record advertising size (and DO) to m.
func withEDNS(m *dns.Msg, size uint16, do bool) *dns.Msg {
	m.SetEdns0(size, do)
	return m
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// rawQuery is a header (RD, one question) followed by body.
func rawQuery(qd, an, ns, ar uint16, body ...byte) []byte {
	b := []byte{0xab, 0xcd, 0x01, 0x00}
	for _, c := range []uint16{qd, an, ns, ar} {
		b = binary.BigEndian.AppendUint16(b, c)
	}
	return append(b, body...)
}

var qWire = []byte{3, 'w', 'w', 'w', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1} // www.test. A IN

func TestParseQuery(t *testing.T) {
	glue := mustRR(t, "ns.test. 60 IN A 192.0.2.1")
	optAfterGlue := query("www.test.", dns.TypeAAAA)
	optAfterGlue.Extra = append(optAfterGlue.Extra, glue)
	withEDNS(optAfterGlue, 1400, false)

	withAnswer := query("www.test.", dns.TypeA)
	withAnswer.Answer = []dns.RR{mustRR(t, "www.test. 60 IN A 192.0.2.2")} // a query may carry records; skipped

	// Four labels of 63 bytes: 257 bytes on the wire, over the 255 limit.
	var longWire []byte
	for range 4 {
		longWire = append(longWire, 63)
		longWire = append(longWire, strings.Repeat("x", 63)...)
	}
	longWire = append(longWire, 0, 0, 1, 0, 1)

	response := query("www.test.", dns.TypeA)
	response.Response = true

	cases := []struct {
		name    string
		msg     []byte
		err     error
		qtype   uint16
		hasOPT  bool
		udpSize uint16
		do      bool
	}{
		{name: "no EDNS", msg: pack(t, query("www.test.", dns.TypeA)), qtype: dns.TypeA, udpSize: 512},
		{name: "EDNS 1232", msg: pack(t, withEDNS(query("www.test.", dns.TypeMX), 1232, false)), qtype: dns.TypeMX, hasOPT: true, udpSize: 1232},
		{name: "EDNS 4096 with DO", msg: pack(t, withEDNS(query("example.", dns.TypeDNSKEY), 4096, true)), qtype: dns.TypeDNSKEY, hasOPT: true, udpSize: 4096, do: true},
		{name: "EDNS size below 512 counts as 512", msg: pack(t, withEDNS(query("www.test.", dns.TypeA), 100, false)), qtype: dns.TypeA, hasOPT: true, udpSize: 512},
		{name: "OPT after another additional record", msg: pack(t, optAfterGlue), qtype: dns.TypeAAAA, hasOPT: true, udpSize: 1400},
		{name: "answer section skipped", msg: pack(t, withAnswer), qtype: dns.TypeA, udpSize: 512},
		{name: "root name", msg: pack(t, query(".", dns.TypeNS)), qtype: dns.TypeNS, udpSize: 512},

		{name: "empty", msg: nil, err: errShort},
		{name: "11 bytes", msg: make([]byte, 11), err: errShort},
		{name: "QR set", msg: pack(t, response), err: errResponse},
		{name: "no question", msg: rawQuery(0, 0, 0, 0), err: errQDCount},
		{name: "two questions", msg: rawQuery(2, 0, 0, 0, append(append([]byte{}, qWire...), qWire...)...), err: errQDCount},
		{name: "pointer in question", msg: rawQuery(1, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1), err: errCompressed},
		{name: "reserved label type", msg: rawQuery(1, 0, 0, 0, 0x40, 0, 0, 1, 0, 1), err: errCompressed},
		{name: "label past the end", msg: rawQuery(1, 0, 0, 0, 10, 'a', 'b'), err: errBadName},
		{name: "name without end", msg: rawQuery(1, 0, 0, 0, 1, 'a'), err: errBadName},
		{name: "name over 255 bytes", msg: rawQuery(1, 0, 0, 0, longWire...), err: errBadName},
		{name: "question without type", msg: rawQuery(1, 0, 0, 0, 1, 'a', 0, 0, 1), err: errBadName},
		{name: "answer claimed, none there", msg: rawQuery(1, 1, 0, 0, qWire...), err: errTruncated},
		{name: "65535 additional claimed", msg: rawQuery(1, 0, 0, 0xffff, qWire...), err: errTruncated},
		{name: "additional record cut in its header", msg: rawQuery(1, 0, 0, 1, append(append([]byte{}, qWire...), 0, 0, 41, 0x10, 0)...), err: errTruncated},
		{name: "rdlength past the end", msg: rawQuery(1, 0, 0, 1, append(append([]byte{}, qWire...), 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 9, 1)...), err: errTruncated},
		{name: "bad label in additional", msg: rawQuery(1, 0, 0, 1, append(append([]byte{}, qWire...), 0x80, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0)...), err: errBadName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := parseQuery(c.msg)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			ref := new(dns.Msg)
			if err := ref.Unpack(c.msg); err != nil {
				t.Fatal(err)
			}
			if q.qtype != c.qtype {
				t.Errorf("qtype = %d, want %d", q.qtype, c.qtype)
			}
			if wantEnd := 12 + len(nameWire(t, ref.Question[0].Name)) + 4; q.end != wantEnd {
				t.Errorf("end = %d, want %d", q.end, wantEnd)
			}
			if (q.optOff >= 0) != c.hasOPT {
				t.Errorf("optOff = %d, want OPT found = %v", q.optOff, c.hasOPT)
			}
			if c.hasOPT {
				// The OPT owner is the root: one zero byte, then TYPE 41.
				if c.msg[q.optOff] != 0 || binary.BigEndian.Uint16(c.msg[q.optOff+1:]) != typeOPT {
					t.Errorf("optOff %d does not point at the OPT record", q.optOff)
				}
			}
			if q.udpSize != c.udpSize {
				t.Errorf("udpSize = %d, want %d", q.udpSize, c.udpSize)
			}
			if q.do != c.do {
				t.Errorf("do = %v, want %v", q.do, c.do)
			}
		})
	}
}

// nameWire is the uncompressed wire form of name.
func nameWire(t testing.TB, name string) []byte {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(name, b, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func TestQuestionHash(t *testing.T) {
	h := func(name string, qtype uint16) uint64 {
		q, err := parseQuery(pack(t, query(name, qtype)))
		if err != nil {
			t.Fatal(err)
		}
		return q.hash
	}
	base := h("www.example.com.", dns.TypeA)
	if h("WWW.Example.COM.", dns.TypeA) != base {
		t.Error("hash depends on the case of the name")
	}
	if h("www.example.com.", dns.TypeAAAA) == base {
		t.Error("hash ignores the qtype")
	}
	if h("www.example.org.", dns.TypeA) == base || h("wwwexample.com.", dns.TypeA) == base {
		t.Error("different names hash alike")
	}
	// Label boundaries count: "ab.c" and "a.bc" differ.
	if h("ab.c.", dns.TypeA) == h("a.bc.", dns.TypeA) {
		t.Error("hash ignores label lengths")
	}
	chaos := query("www.example.com.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	if q, _ := parseQuery(pack(t, chaos)); q.hash == base {
		t.Error("hash ignores the qclass")
	}

	// A response hashes like its query, whatever case the backend echoes.
	for _, c := range []struct {
		query, answer string
		same          bool
	}{
		{"www.example.com.", "www.example.com.", true},
		{"www.example.com.", "WWW.EXAMPLE.COM.", true},
		{"WwW.ExAmPlE.cOm.", "www.example.com.", true},
		{"www.example.com.", "www.example.net.", false},
	} {
		q, err := parseQuery(pack(t, query(c.query, dns.TypeA)))
		if err != nil {
			t.Fatal(err)
		}
		r := new(dns.Msg)
		r.SetReply(query(c.answer, dns.TypeA))
		r.Answer = []dns.RR{mustRR(t, c.answer+" 60 IN A 192.0.2.1")}
		withEDNS(r, 4096, false)
		rh, off, ok := responseQuestionHash(pack(t, r))
		if !ok {
			t.Fatalf("%s: responseQuestionHash failed", c.answer)
		}
		if off != 12+len(nameWire(t, c.answer))+4 {
			t.Errorf("%s: question end %d", c.answer, off)
		}
		if (rh == q.hash) != c.same {
			t.Errorf("query %s, response %s: hashes equal = %v, want %v", c.query, c.answer, rh == q.hash, c.same)
		}
	}

	notResponse := pack(t, query("www.example.com.", dns.TypeA))
	noQuestion := rawQuery(0, 0, 0, 0)
	noQuestion[2] |= 0x80
	compressed := rawQuery(1, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1)
	compressed[2] |= 0x80
	for name, m := range map[string][]byte{"query": notResponse, "no question": noQuestion, "compressed question": compressed, "short": {0x80}} {
		if _, _, ok := responseQuestionHash(m); ok {
			t.Errorf("%s: responseQuestionHash accepted it", name)
		}
	}
}

// response builds an answer to name with n A records and the given additional records.
func response(t testing.TB, name string, n int, extra ...dns.RR) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(query(name, dns.TypeA))
	r.Authoritative = true
	for i := range n {
		r.Answer = append(r.Answer, mustRR(t, fmt.Sprintf("%s 60 IN A 192.0.2.%d", name, i+1)))
	}
	r.Ns = []dns.RR{mustRR(t, "example.com. 60 IN NS ns.example.com.")}
	r.Extra = extra
	return r
}

func TestStripOPT(t *testing.T) {
	glue := mustRR(t, "ns.example.com. 60 IN A 192.0.2.53")
	glue6 := mustRR(t, "ns.example.com. 60 IN AAAA 2001:db8::53")
	opt := func() dns.RR {
		o := new(dns.OPT)
		o.Hdr.Name, o.Hdr.Rrtype = ".", dns.TypeOPT
		o.SetUDPSize(4096)
		o.Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e73"}}
		return o
	}
	cases := []struct {
		name      string
		extra     []dns.RR
		wantExtra []dns.RR
	}{
		{"OPT only", []dns.RR{opt()}, nil},
		{"OPT last", []dns.RR{glue, opt()}, []dns.RR{glue}},
		{"OPT first", []dns.RR{opt(), glue}, []dns.RR{glue}},
		{"OPT in the middle", []dns.RR{glue, opt(), glue6}, []dns.RR{glue, glue6}},
		{"no OPT", []dns.RR{glue}, []dns.RR{glue}},
		// RFC 6891 §6.1.1 lets the OPT record sit anywhere in the additional section. The
		// second record's owner is then compressed against the first one's, which lies
		// after the OPT record: removing the OPT bytes must keep that pointer right.
		{"OPT before records compressed against each other", []dns.RR{opt(), mustRR(t, "ns2.other.net. 60 IN A 192.0.2.54"), mustRR(t, "ns2.other.net. 60 IN AAAA 2001:db8::54")},
			[]dns.RR{mustRR(t, "ns2.other.net. 60 IN A 192.0.2.54"), mustRR(t, "ns2.other.net. 60 IN AAAA 2001:db8::54")}},
		{"no additional", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := response(t, "www.example.com.", 3, c.extra...)
			r.Compress = true // names in the additional section point back into the message
			in := pack(t, r)
			out := stripOPT(bytes.Clone(in))
			got := new(dns.Msg)
			if err := got.Unpack(out); err != nil {
				t.Fatalf("stripped message does not unpack: %v", err)
			}
			if got.IsEdns0() != nil {
				t.Error("OPT still there")
			}
			if len(got.Extra) != len(c.wantExtra) {
				t.Fatalf("additional = %v, want %v", got.Extra, c.wantExtra)
			}
			for i := range got.Extra {
				if got.Extra[i].String() != c.wantExtra[i].String() {
					t.Errorf("additional[%d] = %v, want %v", i, got.Extra[i], c.wantExtra[i])
				}
			}
			if len(got.Answer) != 3 || len(got.Ns) != 1 || got.Id != r.Id || !got.Authoritative {
				t.Errorf("the rest of the message changed: %v", got)
			}
			if c.wantExtra == nil && len(c.extra) == 0 && !bytes.Equal(out, in) {
				t.Error("a message without OPT changed")
			}
		})
	}

	// Malformed input comes back as it was, without panicking.
	valid := pack(t, response(t, "www.example.com.", 2, opt()))
	for cut := 12; cut < len(valid); cut++ {
		m := bytes.Clone(valid[:cut])
		out := stripOPT(m)
		if len(out) > cut {
			t.Fatalf("cut at %d: output grew to %d bytes", cut, len(out))
		}
	}
}

func TestTruncateTo(t *testing.T) {
	for _, edns := range []bool{false, true} {
		r := response(t, "big.example.com.", 40)
		if edns {
			withEDNS(r, 4096, true)
		}
		r.RecursionDesired, r.RecursionAvailable = true, true
		m := pack(t, r)
		q, err := parseQuery(pack(t, query("big.example.com.", dns.TypeA)))
		if err != nil {
			t.Fatal(err)
		}
		out := truncateTo(m, q.end)
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("edns=%v: truncated message does not unpack: %v", edns, err)
		}
		if !got.Truncated || len(got.Answer)+len(got.Ns)+len(got.Extra) != 0 {
			t.Errorf("edns=%v: TC=%v, %d/%d/%d records; want TC and nothing but the question", edns, got.Truncated, len(got.Answer), len(got.Ns), len(got.Extra))
		}
		if got.Id != r.Id || got.Rcode != r.Rcode || !got.Response || !got.Authoritative || !got.RecursionDesired || !got.RecursionAvailable {
			t.Errorf("edns=%v: header changed beyond TC: %v", edns, got.MsgHdr)
		}
		if len(got.Question) != 1 || got.Question[0] != r.Question[0] {
			t.Errorf("edns=%v: question %v", edns, got.Question)
		}
		if len(out) != q.end {
			t.Errorf("edns=%v: %d bytes, want %d", edns, len(out), q.end)
		}
	}
}

func TestAppendError(t *testing.T) {
	q := query("www.example.com.", dns.TypeAAAA)
	q.Id = 0x4242
	q.RecursionDesired = true
	q.CheckingDisabled = true
	q.Opcode = dns.OpcodeQuery
	withEDNS(q, 1232, true)
	msg := pack(t, q)
	pq, err := parseQuery(msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range []byte{rcodeServfail, rcodeRefused} {
		prefix := []byte("prefix")
		out := appendError(bytes.Clone(prefix), msg, pq.end, rc)
		if !bytes.Equal(out[:len(prefix)], prefix) {
			t.Fatal("appendError overwrote what dst held")
		}
		got := new(dns.Msg)
		if err := got.Unpack(out[len(prefix):]); err != nil {
			t.Fatalf("rcode %d: does not unpack: %v", rc, err)
		}
		if got.Id != q.Id || !got.Response || got.Rcode != int(rc) || got.Opcode != q.Opcode {
			t.Errorf("rcode %d: header %v", rc, got.MsgHdr)
		}
		if !got.RecursionDesired || !got.CheckingDisabled {
			t.Errorf("rcode %d: RD and CD must be echoed: %v", rc, got.MsgHdr)
		}
		if !got.RecursionAvailable {
			t.Errorf("rcode %d: RA not set", rc)
		}
		if got.Authoritative || got.Truncated {
			t.Errorf("rcode %d: AA or TC set: %v", rc, got.MsgHdr)
		}
		if len(got.Question) != 1 || got.Question[0] != q.Question[0] {
			t.Errorf("rcode %d: question %v", rc, got.Question)
		}
		if len(got.Answer)+len(got.Ns)+len(got.Extra) != 0 {
			t.Errorf("rcode %d: carries records: %v", rc, got)
		}
	}
	// The query's own AA/TC bits (meaningless in a query) do not leak into the answer.
	q2 := query("www.example.com.", dns.TypeA)
	q2.Authoritative, q2.Truncated = true, true
	m2 := pack(t, q2)
	pq2, _ := parseQuery(m2)
	got := new(dns.Msg)
	if err := got.Unpack(appendError(nil, m2, pq2.end, rcodeServfail)); err != nil {
		t.Fatal(err)
	}
	if got.Authoritative || got.Truncated || !got.RecursionDesired {
		t.Errorf("header %v: want AA and TC clear, RD echoed", got.MsgHdr)
	}
}

func TestAppendOPT(t *testing.T) {
	for _, q := range []*dns.Msg{query("www.example.com.", dns.TypeA), response(t, "www.example.com.", 1, mustRR(t, "ns.example.com. 60 IN A 192.0.2.53"))} {
		q.Response = false
		m := pack(t, q)
		out := appendOPT(m, backendEDNSSize)
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("does not unpack after appendOPT: %v", err)
		}
		opt := got.IsEdns0()
		if opt == nil || opt.UDPSize() != backendEDNSSize || opt.Do() || opt.Version() != 0 {
			t.Errorf("OPT = %v, want version 0, size %d, DO clear", opt, backendEDNSSize)
		}
		if len(got.Extra) != len(q.Extra)+1 {
			t.Errorf("additional has %d records, want %d", len(got.Extra), len(q.Extra)+1)
		}
		pq, err := parseQuery(out)
		if err != nil || pq.udpSize != backendEDNSSize || pq.optOff < 0 {
			t.Errorf("parseQuery after appendOPT: %+v, %v", pq, err)
		}
		if back := stripOPT(out); !bytes.Equal(back, m) {
			t.Error("stripOPT does not undo appendOPT")
		}
	}
}

// An extended rcode cannot reach a client without EDNS: it becomes SERVFAIL rather than
// its low four bits (BADCOOKIE 23 would read as YXDOMAIN 7).
func TestStripOPTExtendedRcode(t *testing.T) {
	for _, last := range []bool{true, false} {
		m := new(dns.Msg)
		m.SetQuestion("www.example.test.", dns.TypeA)
		m.Response = true
		m.Rcode = dns.RcodeBadCookie
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		glue, _ := dns.NewRR("ns.example.test. 60 IN A 192.0.2.1")
		glue6, _ := dns.NewRR("ns.example.test. 60 IN AAAA 2001:db8::1")
		if last {
			m.Extra = []dns.RR{glue, o}
		} else {
			m.Extra = []dns.RR{o, glue, glue6}
		}
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var got dns.Msg
		if err := got.Unpack(stripOPT(wire)); err != nil {
			t.Fatal(err)
		}
		if got.IsEdns0() != nil || got.Rcode != dns.RcodeServerFailure {
			t.Errorf("OPT last=%v: rcode %s, OPT %v", last, dns.RcodeToString[got.Rcode], got.IsEdns0() != nil)
		}
	}
}
