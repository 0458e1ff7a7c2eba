package engine

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"
)

// fuzzSeeds are well-formed queries and answers, and a few broken ones, to start from.
func fuzzSeeds(f *testing.F) {
	q := func(name string, qtype uint16, edns uint16, do bool) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if edns > 0 {
			m.SetEdns0(edns, do)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(q("www.example.com.", dns.TypeA, 0, false))
	f.Add(q("WWW.Example.COM.", dns.TypeAAAA, 1232, true))
	f.Add(q(".", dns.TypeNS, 4096, false))
	r := new(dns.Msg)
	r.SetQuestion("www.example.com.", dns.TypeA)
	r.Response = true
	for _, s := range []string{"www.example.com. 60 IN A 192.0.2.1", "www.example.com. 60 IN A 192.0.2.2"} {
		rr, _ := dns.NewRR(s)
		r.Answer = append(r.Answer, rr)
	}
	ns, _ := dns.NewRR("example.com. 60 IN NS ns.example.com.")
	glue, _ := dns.NewRR("ns.example.com. 60 IN A 192.0.2.53")
	r.Ns = []dns.RR{ns}
	r.Extra = []dns.RR{glue}
	r.SetEdns0(4096, true)
	r.Compress = true
	if b, err := r.Pack(); err == nil {
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 0xc0, 12, 0, 1, 0, 1})
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 1})
	f.Add(make([]byte, 12))
}

// FuzzParseQuery: parseQuery never panics, and what it accepts agrees with miekg/dns.
func FuzzParseQuery(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, m []byte) {
		in := bytes.Clone(m)
		q, err := parseQuery(m)
		if !bytes.Equal(in, m) {
			t.Fatal("parseQuery modified its input")
		}
		if err != nil {
			return
		}
		if q.end < headerLen+5 || q.end > len(m) {
			t.Fatalf("question end %d outside the message (%d bytes)", q.end, len(m))
		}
		if q.optOff >= len(m) || q.optOff >= 0 && q.optOff < q.end {
			t.Fatalf("OPT offset %d outside the additional section (question ends at %d, message %d bytes)", q.optOff, q.end, len(m))
		}
		if q.udpSize < minUDPSize {
			t.Fatalf("udpSize %d below %d", q.udpSize, minUDPSize)
		}
		h, end, ok := responseQuestionHash(append([]byte{m[0], m[1], m[2] | 0x80}, m[3:]...))
		if !ok || h != q.hash || end != q.end {
			t.Fatalf("the same question hashes differently as a response: %x/%d vs %x/%d", h, end, q.hash, q.end)
		}
		ref := new(dns.Msg)
		if ref.Unpack(m) != nil || len(ref.Question) != 1 {
			return
		}
		if ref.Question[0].Qtype != q.qtype {
			t.Fatalf("qtype %d, miekg/dns reads %d", q.qtype, ref.Question[0].Qtype)
		}
		opts := 0
		for _, rr := range ref.Extra {
			if rr.Header().Rrtype == dns.TypeOPT {
				opts++
			}
		}
		if opt := ref.IsEdns0(); opts == 1 && max(opt.UDPSize(), minUDPSize) != q.udpSize {
			t.Fatalf("udpSize %d, miekg/dns reads %d", q.udpSize, opt.UDPSize())
		}
	})
}

// FuzzStripOPT: stripOPT never panics on any input. On a well-formed message (the input as
// miekg/dns unpacks and packs it again: counts that match, compression pointers that point
// back to names, an OPT record anywhere in the additional section) the output unpacks with
// the same records but the OPT, or is the input unchanged when stripOPT declines.
func FuzzStripOPT(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, m []byte) {
		// stripOPT runs on backend answers, which the loop has checked hold a header.
		if len(m) < headerLen {
			return
		}
		stripOPT(bytes.Clone(m))

		ref := new(dns.Msg)
		if ref.Unpack(m) != nil {
			return
		}
		ref.Compress = true
		wf, err := ref.Pack()
		if err != nil {
			return
		}
		if ref.Unpack(wf) != nil {
			return
		}
		out := stripOPT(bytes.Clone(wf))
		if bytes.Equal(out, wf) {
			// Declined: stripOPT leaves a message it cannot rewrite as it was (an extended
			// rcode that lives in the OPT, for one).
			return
		}
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("input unpacks but output does not: %v\ninput: %x\noutput: %x", err, wf, out)
		}
		if len(got.Answer) != len(ref.Answer) || len(got.Ns) != len(ref.Ns) {
			t.Fatalf("answer/authority changed: %d/%d → %d/%d", len(ref.Answer), len(ref.Ns), len(got.Answer), len(got.Ns))
		}
		for i := range ref.Answer {
			if got.Answer[i].String() != ref.Answer[i].String() {
				t.Fatalf("answer[%d] = %q, want %q", i, got.Answer[i].String(), ref.Answer[i].String())
			}
		}
		hadOPT := false
		var kept []dns.RR
		for _, rr := range ref.Extra {
			if rr.Header().Rrtype == dns.TypeOPT && !hadOPT {
				hadOPT = true
				continue
			}
			kept = append(kept, rr)
		}
		if len(got.Extra) != len(kept) {
			t.Fatalf("additional: %d records, want %d\ninput: %x\noutput: %x", len(got.Extra), len(kept), wf, out)
		}
		for i := range kept {
			if got.Extra[i].String() != kept[i].String() {
				t.Fatalf("additional[%d] = %q, want %q", i, got.Extra[i].String(), kept[i].String())
			}
		}
	})
}
