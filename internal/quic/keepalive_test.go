package quic

import (
	"testing"

	"github.com/miekg/dns"
)

func TestHasTCPKeepalive(t *testing.T) {
	pack := func(opts ...dns.EDNS0) []byte {
		m := new(dns.Msg)
		m.SetQuestion("example.org.", dns.TypeA)
		if opts != nil {
			m.SetEdns0(1232, false)
			o := m.IsEdns0()
			o.Option = append(o.Option, opts...)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	keepalive := &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE}
	padding := &dns.EDNS0_PADDING{Padding: make([]byte, 8)}
	withKA := pack(padding, keepalive)
	cases := []struct {
		name string
		msg  []byte
		want bool
	}{
		{"no OPT", pack(), false},
		{"OPT without options", pack([]dns.EDNS0{}...), false},
		{"padding only", pack(padding), false},
		{"keepalive after padding", withKA, true},
		{"keepalive cut short", withKA[:len(withKA)-1], false},
		{"short header", withKA[:8], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := hasTCPKeepalive(c.msg); got != c.want {
				t.Fatalf("hasTCPKeepalive = %v, want %v", got, c.want)
			}
		})
	}
}
