package rules

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzParseQuery feeds arbitrary messages to ParseQuery, the rules and the answer writer:
// none may panic, and every answer must parse and echo the question.
func FuzzParseQuery(f *testing.F) {
	for _, edit := range []func(*dns.Msg){nil, func(m *dns.Msg) { m.SetEdns0(1232, true) }} {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		if edit != nil {
			edit(m)
		}
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 4, 0, 15, 0, 9})
	rs := compileYAML(f, `query_rules:
  - selector: { type: EDNSOption, option_code: 15 }
    action: { type: SetExtendedDNSError, info_code: 4, extra_text: "x" }
  - selector: { type: Regex, expression: "a" }
    action: { type: SetTag, tag: t, value: v }
  - selector: { type: RecordsTypeCount, section: 3, record_type: 41, minimum: 1, maximum: 1 }
    action: { type: Spoof, ips: ["192.0.2.1", "2001:db8::1"] }
  - selector: { type: QNameSuffix, suffixes: ["com."] }
    action: { type: NegativeAndSOA, nxd: true, zone: "com.", ttl: 5, mname: "a.com.", rname: "b.com." }
  - selector: { type: All }
    action: { type: RCode, rcode: BADVERS }
`)
	f.Fuzz(func(t *testing.T, msg []byte) {
		q := &Query{Client: netip.MustParseAddr("192.0.2.1"), Proto: DoUDP}
		if _, err := ParseQuery(q, msg); err != nil {
			return
		}
		v := rs.EvalQuery(q)
		q.Resp = msg
		rs.EvalResponse(q)
		if !v.Kind.Answers() {
			return
		}
		out := WriteAnswer(nil, q, &v)
		var m dns.Msg
		if err := m.Unpack(out); err != nil {
			// miekg/dns refuses some names the wire allows (e.g. labels with dots);
			// the header and question must still be ours.
			if len(out) < 12+len(q.QName)+4 || out[0] != msg[0] || out[1] != msg[1] {
				t.Fatalf("answer %x to %x: %v", out, msg, err)
			}
			return
		}
		if !m.Response || len(m.Question) != 1 {
			t.Fatalf("answer %v", &m)
		}
	})
}

// FuzzNameText checks that the presentation form of any wire name is bounded and that the
// suffix table never panics on it.
func FuzzNameText(f *testing.F) {
	f.Add([]byte("\x03www\x07example\x03com\x00"))
	f.Add([]byte("\x01.\x02\\\xff\x00"))
	s, _ := NewSuffixSet([]string{"example.com.", "."})
	f.Fuzz(func(t *testing.T, wire []byte) {
		end, err := nameEnd(append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, wire...), 12)
		if err != nil {
			return
		}
		name := wire[:end-12]
		if txt := appendNameText(nil, name); len(txt) > maxTextName {
			t.Fatalf("text form of %x is %d bytes", name, len(txt))
		}
		s.Match(name)
		suffixOf(name, 2)
	})
}
