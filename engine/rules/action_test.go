package rules

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestActions runs each query action on a matching query and checks the verdict and, for
// answers, the message WriteAnswer builds.
func TestActions(t *testing.T) {
	tests := []struct {
		action string
		qtype  uint16
		proto  Protocol
		edns   bool
		check  func(t *testing.T, v Verdict, q *Query, ans *dns.Msg)
	}{
		{action: `{ type: Drop }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindDrop) }},
		{action: `{ type: Allow }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindAllow) }},
		{action: `{ type: None }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindNone) }},
		{action: `{ type: RCode, rcode: REFUSED }`, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			wantKind(t, v, KindRCode)
			if m.Rcode != dns.RcodeRefused || !m.Response || len(m.Answer) != 0 || !m.RecursionAvailable {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: RCode, rcode: NXDOMAIN, vars: { set_aa: true, set_ra: false } }`, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			if m.Rcode != dns.RcodeNameError || !m.Authoritative || m.RecursionAvailable {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: ERCode, rcode: BADVERS }`, edns: true, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			if m.Rcode != dns.RcodeBadVers {
				t.Errorf("rcode %d, want BADVERS", m.Rcode)
			}
		}},
		{action: `{ type: Spoof, ips: ["192.0.2.99", "2001:db8::99"], vars: { ttl: 30 } }`, qtype: dns.TypeA, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			wantKind(t, v, KindSpoof)
			if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.99" || m.Answer[0].Header().Ttl != 30 {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: Spoof, ips: ["192.0.2.99", "2001:db8::99"] }`, qtype: dns.TypeAAAA, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			if len(m.Answer) != 1 || m.Answer[0].(*dns.AAAA).AAAA.String() != "2001:db8::99" || m.Answer[0].Header().Ttl != 60 {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: Spoof, ips: ["192.0.2.99", "2001:db8::99"] }`, qtype: dns.TypeANY, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			if len(m.Answer) != 2 {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: Spoof, ips: ["192.0.2.99"] }`, qtype: dns.TypeMX, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			wantKind(t, v, KindNone) // no record of the query's type: the rules go on
		}},
		{action: `{ type: SpoofCNAME, cname: "elsewhere.example." }`, qtype: dns.TypeMX, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			if len(m.Answer) != 1 || m.Answer[0].(*dns.CNAME).Target != "elsewhere.example." {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: SpoofRaw, answers: ["\\005hello", "\\003bye"] }`, qtype: dns.TypeTXT, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			if len(m.Answer) != 2 || m.Answer[0].(*dns.TXT).Txt[0] != "hello" || m.Answer[1].(*dns.TXT).Txt[0] != "bye" {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: NegativeAndSOA, nxd: true, zone: "example.", ttl: 300, mname: "ns.example.", rname: "hostmaster.example.", soa_parameters: { serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4 }, soa_in_authority: true }`,
			check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
				if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 || m.Ns[0].(*dns.SOA).Serial != 7 || m.Ns[0].Header().Name != "example." {
					t.Errorf("answer %v", m)
				}
			}},
		{action: `{ type: NegativeAndSOA, nxd: false, zone: "example.", ttl: 300, mname: "ns.example.", rname: "hostmaster.example." }`, edns: true,
			check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
				if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Extra) != 2 || m.IsEdns0() == nil {
					t.Errorf("answer %v", m)
				}
			}},
		{action: `{ type: TC }`, check: func(t *testing.T, v Verdict, _ *Query, m *dns.Msg) {
			wantKind(t, v, KindTruncate)
			if !m.Truncated || len(m.Answer) != 0 {
				t.Errorf("answer %v", m)
			}
		}},
		{action: `{ type: TC }`, proto: DoTCP, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindNone) }},
		{action: `{ type: HTTPStatus, status: 403, body: "no", content_type: "text/plain" }`, proto: DoH, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			wantKind(t, v, KindHTTPStatus)
			if v.HTTP.Status != 403 || string(v.HTTP.Body) != "no" || v.HTTP.ContentType != "text/plain" {
				t.Errorf("http %+v", v.HTTP)
			}
		}},
		{action: `{ type: HTTPStatus, status: 403 }`, proto: DoT, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindNone) }},
		{action: `{ type: Pool, pool_name: abuse }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if v.Kind != KindAllow || v.Pool != "abuse" {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: Pool, pool_name: abuse, stop_processing: false }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if v.Kind != KindNone || v.Pool != "abuse" {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: QPSPool, limit: 100, pool_name: slow }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if v.Kind != KindAllow || v.Pool != "slow" {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: QPS, limit: 100 }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindNone) }},
		{action: `{ type: SetNoRecurse }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if !v.NoRecurse || v.Kind != KindNone {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: SetSkipCache }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if !v.SkipCache {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: SetMaxReturnedTTL, max: 30 }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if !v.HasMaxReturnedTTL || v.MaxReturnedTTL != 30 {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: SetTempFailureCacheTTL, ttl: 5 }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if !v.HasTempFailureTTL || v.TempFailureCacheTTL != 5 {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: SetExtendedDNSError, info_code: 15, extra_text: "blocked" }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if v.EDE == nil || v.EDE.InfoCode != 15 || v.EDE.ExtraText != "blocked" || !v.EDE.ClearExisting {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: Delay, msec: 250 }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) {
			if v.Delay != 250*time.Millisecond || v.Kind != KindNone {
				t.Errorf("verdict %+v", v)
			}
		}},
		{action: `{ type: SetTag, tag: class, value: abuse }`, check: func(t *testing.T, v Verdict, q *Query, _ *dns.Msg) {
			if val, ok := q.Tags.Get("class"); !ok || val != "abuse" {
				t.Errorf("tags %+v", q.Tags)
			}
		}},
		{action: `{ type: UnsetTag, tag: preset }`, check: func(t *testing.T, v Verdict, q *Query, _ *dns.Msg) {
			if _, ok := q.Tags.Get("preset"); ok {
				t.Errorf("tag still set")
			}
		}},
		{action: `{ type: Continue, action: { type: Drop } }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindNone) }},
		{action: `{ type: Log, verbose_only: false }`, check: func(t *testing.T, v Verdict, _ *Query, _ *dns.Msg) { wantKind(t, v, KindNone) }},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			rs := compileYAML(t, "query_rules:\n  - name: r\n    selector: { type: All }\n    action: "+tt.action+"\n")
			qtype := tt.qtype
			if qtype == 0 {
				qtype = dns.TypeA
			}
			msg := packQuery(t, "x.example", qtype, func(m *dns.Msg) {
				if tt.edns {
					m.SetEdns0(4096, true)
				}
			})
			q := newQuery(t, msg, "192.0.2.1")
			q.Proto = tt.proto
			q.Tags.Set("preset", "1")
			v := rs.EvalQuery(q)
			var ans *dns.Msg
			if v.Kind.Answers() {
				out := WriteAnswer(make([]byte, 0, 512), q, &v)
				ans = new(dns.Msg)
				if err := ans.Unpack(out); err != nil {
					t.Fatalf("answer does not parse: %v", err)
				}
				if ans.Id != 0x1234 || len(ans.Question) != 1 || ans.Question[0].Name != "x.example." {
					t.Fatalf("answer does not echo the query: %v", ans)
				}
				if tt.edns && ans.IsEdns0() == nil {
					t.Fatalf("answer to an EDNS query has no OPT: %v", ans)
				}
			}
			tt.check(t, v, q, ans)
		})
	}
}

func wantKind(t *testing.T, v Verdict, k Kind) {
	t.Helper()
	if v.Kind != k {
		t.Errorf("verdict %v, want %v", v.Kind, k)
	}
}

// TestEDEInAnswer puts the Extended DNS Error of an earlier rule into a refused answer.
func TestEDEInAnswer(t *testing.T) {
	rs := compileYAML(t, `query_rules:
  - selector: { type: All }
    action: { type: SetExtendedDNSError, info_code: 17, extra_text: "policy" }
  - selector: { type: QNameSuffix, suffixes: [blocked.example.] }
    action: { type: RCode, rcode: REFUSED }
`)
	q := newQuery(t, packQuery(t, "a.blocked.example", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) }), "192.0.2.1")
	v := rs.EvalQuery(q)
	if v.Rule != 1 {
		t.Fatalf("deciding rule %d, want 1", v.Rule)
	}
	m := new(dns.Msg)
	if err := m.Unpack(WriteAnswer(nil, q, &v)); err != nil {
		t.Fatal(err)
	}
	opt := m.IsEdns0()
	if opt == nil || len(opt.Option) != 1 {
		t.Fatalf("no EDE option: %v", m)
	}
	ede, ok := opt.Option[0].(*dns.EDNS0_EDE)
	if !ok || ede.InfoCode != 17 || ede.ExtraText != "policy" {
		t.Fatalf("EDE %v", opt.Option[0])
	}
}

// TestResponseActions runs the response actions.
func TestResponseActions(t *testing.T) {
	mkResp := func() []byte {
		m := new(dns.Msg)
		m.SetQuestion("x.example.", dns.TypeA)
		m.Response = true
		for _, s := range []string{"x.example. 3600 IN A 192.0.2.1", "x.example. 5 IN A 192.0.2.2", "x.example. 600 IN TXT \"t\""} {
			rr, _ := dns.NewRR(s)
			m.Answer = append(m.Answer, rr)
		}
		m.SetEdns0(1232, false)
		b, _ := m.Pack()
		return b
	}
	ttls := func(t *testing.T, b []byte) []uint32 {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		var out []uint32
		for _, rr := range m.Answer {
			out = append(out, rr.Header().Ttl)
		}
		return out
	}
	tests := []struct {
		action string
		kind   Kind
		ttls   []uint32
		check  func(v Verdict) bool
	}{
		{`{ type: Drop }`, KindDrop, []uint32{3600, 5, 600}, nil},
		{`{ type: Allow }`, KindAllow, []uint32{3600, 5, 600}, nil},
		{`{ type: SetMaxTTL, max: 300 }`, KindNone, []uint32{300, 5, 300}, nil},
		{`{ type: SetMinTTL, min: 60 }`, KindNone, []uint32{3600, 60, 600}, nil},
		{`{ type: LimitTTL, min: 10, max: 100, types: [1] }`, KindNone, []uint32{100, 10, 600}, nil},
		{`{ type: SetMaxReturnedTTL, max: 30 }`, KindNone, []uint32{3600, 5, 600}, func(v Verdict) bool { return v.HasMaxReturnedTTL && v.MaxReturnedTTL == 30 }},
		{`{ type: Delay, msec: 10 }`, KindNone, []uint32{3600, 5, 600}, func(v Verdict) bool { return v.Delay == 10*time.Millisecond }},
		{`{ type: SetSkipCache }`, KindNone, []uint32{3600, 5, 600}, func(v Verdict) bool { return v.SkipCache }},
		{`{ type: Log }`, KindNone, []uint32{3600, 5, 600}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			for _, list := range []string{"response_rules", "cache_hit_response_rules", "self_answered_response_rules"} {
				rs := compileYAML(t, list+":\n  - selector: { type: RCode, rcode: NOERROR }\n    action: "+tt.action+"\n")
				q := newQuery(t, packQuery(t, "x.example", dns.TypeA, nil), "192.0.2.1")
				q.Resp = mkResp()
				var v Verdict
				switch list {
				case "response_rules":
					v = rs.EvalResponse(q)
				case "cache_hit_response_rules":
					v = rs.EvalCacheHit(q)
				default:
					v = rs.EvalSelfAnswered(q)
				}
				if v.Kind != tt.kind {
					t.Errorf("%s: verdict %v, want %v", list, v.Kind, tt.kind)
				}
				if got := ttls(t, q.Resp); len(got) != 3 || got[0] != tt.ttls[0] || got[1] != tt.ttls[1] || got[2] != tt.ttls[2] {
					t.Errorf("%s: TTLs %v, want %v", list, got, tt.ttls)
				}
				if tt.check != nil && !tt.check(v) {
					t.Errorf("%s: verdict %+v", list, v)
				}
			}
		})
	}
}

// TestRuleOrder: the first terminal rule decides, non-terminal ones before it add settings,
// and the prefilter keeps the configured order across indexed and unindexed rules.
func TestRuleOrder(t *testing.T) {
	rs := compileYAML(t, `query_rules:
  - selector: { type: QNameSuffix, suffixes: [example.] }
    action: { type: SetSkipCache }
  - selector: { type: RD }
    action: { type: SetTag, tag: rd, value: "1" }
  - selector: { type: Tag, tag: rd }
    action: { type: Pool, pool_name: tagged, stop_processing: false }
  - selector: { type: QType, qtype: AAAA }
    action: { type: RCode, rcode: REFUSED }
  - selector: { type: QName, qname: x.example. }
    action: { type: Drop }
  - selector: { type: All }
    action: { type: RCode, rcode: SERVFAIL }
`)
	q := newQuery(t, packQuery(t, "x.example", dns.TypeA, nil), "192.0.2.1")
	v := rs.EvalQuery(q)
	if v.Kind != KindDrop || !v.SkipCache || v.Pool != "tagged" || v.Rule != 4 {
		t.Fatalf("verdict %+v", v)
	}
	q = newQuery(t, packQuery(t, "x.example", dns.TypeAAAA, nil), "192.0.2.1")
	if v := rs.EvalQuery(q); v.Kind != KindRCode || v.RCode != dns.RcodeRefused || v.Rule != 3 {
		t.Fatalf("verdict %+v", v)
	}
	q = newQuery(t, packQuery(t, "y.test", dns.TypeMX, nil), "192.0.2.1")
	if v := rs.EvalQuery(q); v.Kind != KindRCode || v.RCode != dns.RcodeServerFailure || v.SkipCache {
		t.Fatalf("verdict %+v", v)
	}
}

// TestManyRules: lists longer than the prefilter's capacity still run every rule in order.
func TestManyRules(t *testing.T) {
	doc := "query_rules:\n"
	for i := 0; i < 1100; i++ {
		doc += "  - selector: { type: QNameSuffix, suffixes: [\"n" + itoa(i) + ".example.\"] }\n    action: { type: RCode, rcode: \"" + itoa(i%16) + "\" }\n"
	}
	rs := compileYAML(t, doc)
	for _, i := range []int{0, 63, 64, 1023, 1024, 1099} {
		q := newQuery(t, packQuery(t, "a.n"+itoa(i)+".example", dns.TypeA, nil), "192.0.2.1")
		if v := rs.EvalQuery(q); v.Kind != KindRCode || v.Rule != i {
			t.Errorf("rule %d: verdict %+v", i, v)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

// TestAddEDE adds an EDE to a backend answer, replacing the backend's own.
func TestAddEDE(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("x.example.", dns.TypeA)
	m.Response = true
	m.SetEdns0(1232, true)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_EDE{InfoCode: 3, ExtraText: "stale"}, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6162"})
	resp, _ := m.Pack()
	out, ok := AddEDE(make([]byte, 0, 512), resp, &EDE{InfoCode: 15, ExtraText: "blocked", ClearExisting: true})
	if !ok {
		t.Fatal("no OPT found")
	}
	var got dns.Msg
	if err := got.Unpack(out); err != nil {
		t.Fatal(err)
	}
	opts := got.IsEdns0().Option
	if len(opts) != 2 || opts[0].(*dns.EDNS0_NSID).Nsid != "6162" || opts[1].(*dns.EDNS0_EDE).InfoCode != 15 || !got.IsEdns0().Do() {
		t.Fatalf("options %v", opts)
	}
	m.Extra = nil
	plain, _ := m.Pack()
	if out, ok := AddEDE(nil, plain, &EDE{InfoCode: 15}); ok || string(out) != string(plain) {
		t.Fatal("a response without OPT was changed")
	}
}
