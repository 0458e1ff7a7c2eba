package rules

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"regexp"
	"time"

	"github.com/dnsfront/dnsfront/config"
)

// Options are what a rule set needs from outside the configuration.
type Options struct {
	// Loops is the number of event loops (Query.Loop is below it); 0 means 1.
	Loops int
	// Logger receives Log actions; nil discards them.
	Logger *slog.Logger
	// PoolAvailable reports whether a pool has a backend up (PoolAvailable selector); nil
	// makes every pool available.
	PoolAvailable func(pool string) bool
	// Clock times rate limits when a Query comes without Now; nil: the system clock.
	Clock Clock
}

// Compile builds a rule set from validated configuration. Errors name the rule by its key
// path; they do not happen for a configuration that config.Parse accepted.
func Compile(r *config.Rules, opt Options) (*RuleSet, error) {
	b := &builder{
		rs:  &RuleSet{names: newNameTable(), log: opt.Logger, loops: max(opt.Loops, 1), clock: opt.Clock},
		opt: opt,
	}
	if b.rs.clock == nil {
		b.rs.clock = NewSystemClock()
	}
	if b.opt.PoolAvailable == nil {
		b.opt.PoolAvailable = func(string) bool { return true }
	}
	var err error
	if b.rs.query, err = b.queryList("query_rules", r.QueryRules); err != nil {
		return nil, err
	}
	for _, l := range []struct {
		key   string
		rules []config.ResponseRule
		dst   *ruleList
	}{{"response_rules", r.ResponseRules, &b.rs.response}, {"cache_hit_response_rules", r.CacheHitResponseRules, &b.rs.cacheHit}, {"self_answered_response_rules", r.SelfAnsweredResponseRules, &b.rs.selfAnswered}} {
		if *l.dst, err = b.responseList(l.key, l.rules); err != nil {
			return nil, err
		}
	}
	b.rs.selWords = (b.nextID + 63) / 64
	return b.rs, nil
}

type builder struct {
	rs     *RuleSet
	opt    Options
	nextID int
}

func (b *builder) newRule(name string, sel selector, act action) rule {
	return rule{name: name, sel: sel, act: act, hits: make([]hitCounter, b.rs.loops)}
}

func (b *builder) queryList(key string, cfg []config.QueryRule) (ruleList, error) {
	var rules []rule
	for i := range cfg {
		p := fmt.Sprintf("%s[%d]", key, i)
		sel, err := b.selector(p+".selector", &cfg[i].Selector)
		if err != nil {
			return ruleList{}, err
		}
		act, err := b.action(p+".action", &cfg[i].Action)
		if err != nil {
			return ruleList{}, err
		}
		rules = append(rules, b.newRule(ruleName(cfg[i].Name, p), sel, act))
	}
	return b.list(rules), nil
}

func (b *builder) responseList(key string, cfg []config.ResponseRule) (ruleList, error) {
	var rules []rule
	for i := range cfg {
		p := fmt.Sprintf("%s[%d]", key, i)
		sel, err := b.selector(p+".selector", &cfg[i].Selector)
		if err != nil {
			return ruleList{}, err
		}
		act, err := b.responseAction(p+".action", &cfg[i].Action)
		if err != nil {
			return ruleList{}, err
		}
		rules = append(rules, b.newRule(ruleName(cfg[i].Name, p), sel, act))
	}
	return b.list(rules), nil
}

func ruleName(name, path string) string {
	if name != "" {
		return name
	}
	return path
}

// list builds the prefilter of a list of rules.
func (b *builder) list(rules []rule) ruleList {
	l := ruleList{rules: rules, words: min((len(rules)+63)/64, maxIndexedWords)}
	for i := range rules {
		if i >= l.words*64 {
			break
		}
		w, bit := i>>6, uint64(1)<<(i&63)
		id, qtype := requirement(rules[i].sel)
		switch {
		case id >= 0:
			for len(l.bySel) <= id {
				l.bySel = append(l.bySel, [maxIndexedWords]uint64{})
			}
			l.bySel[id][w] |= bit
		case qtype >= 0:
			m := l.qtypeMask(uint16(qtype))
			m[w] |= bit
		default:
			l.always[w] |= bit
		}
	}
	return l
}

func (l *ruleList) qtypeMask(t uint16) *[maxIndexedWords]uint64 {
	if t < 256 {
		if l.qtype[t] == nil {
			l.qtype[t] = new([maxIndexedWords]uint64)
		}
		return l.qtype[t]
	}
	if l.byQType == nil {
		l.byQType = map[uint16]*[maxIndexedWords]uint64{}
	}
	if l.byQType[t] == nil {
		l.byQType[t] = new([maxIndexedWords]uint64)
	}
	return l.byQType[t]
}

// requirement returns a condition without which the selector cannot match: an indexed
// name selector's id, or a query type; -1 for none.
func requirement(s selector) (id, qtype int) {
	switch x := s.(type) {
	case *nameSel:
		if x.id >= 0 {
			return x.id, -1
		}
	case qtypeSel:
		return -1, int(x)
	case andSel:
		qt := -1
		for _, c := range x {
			id, t := requirement(c)
			if id >= 0 {
				return id, -1
			}
			if t >= 0 && qt < 0 {
				qt = t
			}
		}
		return -1, qt
	}
	return -1, -1
}

// nameSelector registers names in the rule set's index under a new selector id, or, past
// the index's capacity, builds the selector its own table.
func (b *builder) nameSelector(p string, names []string, suffix bool) (selector, error) {
	s := &nameSel{id: -1, suffix: suffix}
	if b.nextID < maxIndexedWords*64 {
		s.id = b.nextID
		b.nextID++
	} else {
		s.t = newNameTable()
	}
	for i, n := range names {
		w, err := nameToWire(n)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %v", p, i, err)
		}
		if s.id < 0 {
			s.t.insert(w, 0)
			continue
		}
		e := b.rs.names.insert(w, uint32(len(b.rs.nameIDs)))
		if b.rs.names.entries[e].val == uint32(len(b.rs.nameIDs)) {
			b.rs.nameIDs = append(b.rs.nameIDs, nameIDs{})
		}
		ids := &b.rs.nameIDs[b.rs.names.entries[e].val]
		if suffix {
			ids.suffix = appendID(ids.suffix, uint16(s.id))
		} else {
			ids.exact = appendID(ids.exact, uint16(s.id))
		}
	}
	return s, nil
}

func appendID(ids []uint16, id uint16) []uint16 {
	if len(ids) > 0 && ids[len(ids)-1] == id {
		return ids
	}
	return append(ids, id)
}

func (b *builder) selector(p string, cs *config.RuleSelector) (selector, error) {
	switch x := cs.Spec.(type) {
	case *config.AllSelector:
		return allSel{}, nil
	case *config.AndSelector, *config.OrSelector:
		var list []config.RuleSelector
		if a, ok := x.(*config.AndSelector); ok {
			list = a.Selectors
		} else {
			list = x.(*config.OrSelector).Selectors
		}
		subs := make([]selector, 0, len(list))
		for i := range list {
			s, err := b.selector(fmt.Sprintf("%s.selectors[%d]", p, i), &list[i])
			if err != nil {
				return nil, err
			}
			subs = append(subs, s)
		}
		if _, ok := x.(*config.AndSelector); ok {
			return andSel(subs), nil
		}
		return orSel(subs), nil
	case *config.NotSelector:
		s, err := b.selector(p+".selector", &x.Selector)
		if err != nil {
			return nil, err
		}
		return notSel{s}, nil
	case *config.QNameSelector:
		return b.nameSelector(p+".qname", []string{x.QName}, false)
	case *config.QNameSetSelector:
		return b.nameSelector(p+".qnames", x.QNames, false)
	case *config.QNameSuffixSelector:
		return b.nameSelector(p+".suffixes", x.Suffixes, true)
	case *config.RegexSelector:
		// dnsdist compiles Regex with REG_ICASE, and RE2 case-sensitive.
		re, err := regexp.Compile(`(?i)` + x.Expression)
		if err != nil {
			return nil, fmt.Errorf("%s.expression: %v", p, err)
		}
		return regexSel{re}, nil
	case *config.RE2Selector:
		re, err := regexp.Compile(`^(?:` + x.Expression + `)$`)
		if err != nil {
			return nil, fmt.Errorf("%s.expression: %v", p, err)
		}
		return regexSel{re}, nil
	case *config.QTypeSelector:
		t, err := config.ParseQType(x.QType, x.NumericValue)
		if err != nil {
			return nil, fmt.Errorf("%s.qtype: %v", p, err)
		}
		return qtypeSel(t), nil
	case *config.QClassSelector:
		c, err := config.ParseQClass(x.QClass, x.NumericValue)
		if err != nil {
			return nil, fmt.Errorf("%s.qclass: %v", p, err)
		}
		return qclassSel(c), nil
	case *config.OpcodeSelector:
		op, err := config.ParseOpcode(x.Code)
		if err != nil {
			return nil, fmt.Errorf("%s.code: %v", p, err)
		}
		return opcodeSel(op), nil
	case *config.RDSelector:
		return rdSel{}, nil
	case *config.DNSSECSelector:
		return dnssecSel{}, nil
	case *config.EDNSOptionSelector:
		return ednsOptionSel(x.OptionCode), nil
	case *config.EDNSVersionSelector:
		return ednsVersionSel(x.Version), nil
	case *config.PayloadSizeSelector:
		c, ok := map[string]int{"smaller": -2, "smallerOrEqual": -1, "equal": 0, "greaterOrEqual": 1, "greater": 2}[x.Comparison]
		if !ok {
			return nil, fmt.Errorf("%s.comparison: unknown comparison %q", p, x.Comparison)
		}
		return payloadSizeSel{cmp: c, size: int(x.Size)}, nil
	case *config.QNameLabelsCountSelector:
		return labelsCountSel{int(x.MinLabelsCount), int(x.MaxLabelsCount)}, nil
	case *config.QNameWireLengthSelector:
		return wireLengthSel{int(x.Min), int(x.Max)}, nil
	case *config.NetmaskGroupSelector:
		ps := make([]netip.Prefix, 0, len(x.Netmasks))
		for i, n := range x.Netmasks {
			pfx, err := config.ParsePrefix(n)
			if err != nil {
				return nil, fmt.Errorf("%s.netmasks[%d]: %v", p, i, err)
			}
			ps = append(ps, pfx)
		}
		return netmaskSel{g: NewNetmaskGroup(ps), source: x.Source == nil || *x.Source}, nil
	case *config.MaxQPSSelector:
		return maxQPSSel{NewLimiter(x.QPS, x.Burst)}, nil
	case *config.MaxQPSIPSelector:
		c := ClientLimiterConfig{QPS: x.QPS, Burst: x.Burst, IPv4Mask: 32, IPv6Mask: 64}
		if x.IPv4Mask != nil {
			c.IPv4Mask = int(*x.IPv4Mask)
		}
		if x.IPv6Mask != nil {
			c.IPv6Mask = int(*x.IPv6Mask)
		}
		if x.Expiration != nil {
			c.Expiration = time.Duration(*x.Expiration) * time.Second
		}
		if x.CleanupDelay != nil {
			c.CleanupDelay = time.Duration(*x.CleanupDelay) * time.Second
		}
		if x.ScanFraction != nil {
			c.ScanFraction = int(*x.ScanFraction)
		}
		if x.Shards != nil {
			c.Shards = int(*x.Shards)
		}
		return maxQPSIPSel{NewClientLimiter(c)}, nil
	case *config.TCPSelector:
		return tcpSel(x.TCP), nil
	case *config.IncomingProtocolSelector:
		for i, n := range protocolNames {
			if n == x.Protocol {
				return protoSel(i), nil
			}
		}
		return nil, fmt.Errorf("%s.protocol: unknown protocol %q", p, x.Protocol)
	case *config.SNISelector:
		return sniSel(x.ServerName), nil
	case *config.HTTPHeaderSelector:
		re, err := regexp.Compile(x.Expression)
		if err != nil {
			return nil, fmt.Errorf("%s.expression: %v", p, err)
		}
		return httpHeaderSel{name: x.Header, re: re}, nil
	case *config.HTTPPathSelector:
		return httpPathSel(x.Path), nil
	case *config.HTTPPathRegexSelector:
		re, err := regexp.Compile(x.Expression)
		if err != nil {
			return nil, fmt.Errorf("%s.expression: %v", p, err)
		}
		return httpPathRegexSel{re}, nil
	case *config.DSTPortSelector:
		return dstPortSel(x.Port), nil
	case *config.PoolAvailableSelector:
		return poolAvailableSel{pool: x.Pool, available: b.opt.PoolAvailable}, nil
	case *config.TagSelector:
		return tagSel{tag: x.Tag, value: x.Value, emptyAsWildcard: x.EmptyAsWildcard == nil || *x.EmptyAsWildcard}, nil
	case *config.ProbaSelector:
		t := uint64(math.MaxUint64)
		if x.Probability < 1 {
			t = uint64(x.Probability * (1 << 63) * 2)
		}
		return probaSel{t}, nil
	case *config.RCodeSelector:
		rc, err := config.ParseRCode(x.RCode)
		if err != nil {
			return nil, fmt.Errorf("%s.rcode: %v", p, err)
		}
		return rcodeSel(rc), nil
	case *config.ERCodeSelector:
		rc, err := config.ParseRCode(x.RCode)
		if err != nil {
			return nil, fmt.Errorf("%s.rcode: %v", p, err)
		}
		return ercodeSel(rc), nil
	case *config.RecordsCountSelector:
		return recordsCountSel{section: int(x.Section & 3), min: int(x.Minimum), max: int(x.Maximum)}, nil
	case *config.RecordsTypeCountSelector:
		return recordsTypeCountSel{section: int(x.Section & 3), min: int(x.Minimum), max: int(x.Maximum), rtype: x.RecordType}, nil
	case nil:
		return nil, fmt.Errorf("%s: missing", p)
	}
	return nil, fmt.Errorf("%s: selector type %q is not supported", p, cs.Type)
}

func (b *builder) action(p string, ca *config.RuleAction) (action, error) {
	switch x := ca.Spec.(type) {
	case *config.AllowAction:
		return allowAct{}, nil
	case *config.DropAction:
		return dropAct{}, nil
	case *config.NoneAction:
		return noneAct{}, nil
	case *config.ContinueAction:
		a, err := b.action(p+".action", &x.Action)
		if err != nil {
			return nil, err
		}
		return continueAct{a}, nil
	case *config.DelayAction:
		return delayAct(time.Duration(x.Msec) * time.Millisecond), nil
	case *config.RCodeAction:
		rc, err := config.ParseRCode(x.RCode)
		if err != nil {
			return nil, fmt.Errorf("%s.rcode: %v", p, err)
		}
		return rcodeAct{rcode: uint16(rc & 0xf), ans: varsAnswer(x.Vars)}, nil
	case *config.ERCodeAction:
		rc, err := config.ParseRCode(x.RCode)
		if err != nil {
			return nil, fmt.Errorf("%s.rcode: %v", p, err)
		}
		return rcodeAct{rcode: uint16(rc), ans: varsAnswer(x.Vars)}, nil
	case *config.HTTPStatusAction:
		return httpStatusAct{&HTTPAnswer{Status: int(x.Status), Body: []byte(x.Body), ContentType: x.ContentType}}, nil
	case *config.LogAction:
		return newLogAct(x.VerboseOnly), nil
	case *config.NegativeAndSOAAction:
		return negativeAnswer(p, x)
	case *config.PoolAction:
		return poolAct{pool: x.PoolName, stop: x.StopProcessing == nil || *x.StopProcessing}, nil
	case *config.QPSAction:
		return qpsAct{NewLimiter(x.Limit, 0)}, nil
	case *config.QPSPoolAction:
		return qpsPoolAct{l: NewLimiter(x.Limit, 0), pool: poolAct{pool: x.PoolName, stop: x.StopProcessing == nil || *x.StopProcessing}}, nil
	case *config.SetExtendedDNSErrorAction:
		return edeAct{&EDE{InfoCode: x.InfoCode, ExtraText: x.ExtraText, ClearExisting: x.ClearExistingEntries == nil || *x.ClearExistingEntries}}, nil
	case *config.SetMaxReturnedTTLAction:
		return maxReturnedTTLAct(x.Max), nil
	case *config.SetNoRecurseAction:
		return noRecurseAct{}, nil
	case *config.SetSkipCacheAction:
		return skipCacheAct{}, nil
	case *config.SetTagAction:
		return setTagAct{x.Tag, x.Value}, nil
	case *config.UnsetTagAction:
		return unsetTagAct{x.Tag}, nil
	case *config.SetTempFailureCacheTTLAction:
		return tempFailureTTLAct(x.TTL), nil
	case *config.SpoofAction:
		a := varsAnswer(x.Vars)
		a.byType = true
		for i, s := range x.IPs {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s.ips[%d]: %q is not an IP address", p, i, s)
			}
			ip = ip.Unmap()
			typ := uint16(1)
			if ip.Is6() {
				typ = 28
			}
			a.answer = append(a.answer, rrTemplate{typ: typ, ttl: ttlOf(x.Vars), rdata: ip.AsSlice()})
		}
		return spoofAct{a}, nil
	case *config.SpoofCNAMEAction:
		w, err := nameToWire(x.CNAME)
		if err != nil {
			return nil, fmt.Errorf("%s.cname: %v", p, err)
		}
		a := varsAnswer(x.Vars)
		a.answer = []rrTemplate{{typ: 5, ttl: ttlOf(x.Vars), rdata: w}}
		return spoofAct{a}, nil
	case *config.SpoofRawAction:
		a := varsAnswer(x.Vars)
		var forAny uint16
		if x.QTypeForAny != "" {
			t, err := config.ParseQType(x.QTypeForAny, 0)
			if err != nil {
				return nil, fmt.Errorf("%s.qtype_for_any: %v", p, err)
			}
			forAny = t
		}
		for i, s := range x.Answers {
			rd, err := config.ParseRawRData(s)
			if err != nil {
				return nil, fmt.Errorf("%s.answers[%d]: %v", p, i, err)
			}
			a.answer = append(a.answer, rrTemplate{ttl: ttlOf(x.Vars), rdata: rd, typeForAny: forAny})
		}
		return spoofAct{a}, nil
	case *config.TCAction:
		return tcAct{}, nil
	case *config.DnstapLogAction:
		return b.dnstapAction(p, x)
	case *config.SetDisableECSAction, *config.SetECSAction, *config.SetECSOverrideAction, *config.SetECSPrefixLengthAction:
		return ecsAction(p, ca.Spec)
	case nil:
		return nil, fmt.Errorf("%s: missing", p)
	}
	return nil, fmt.Errorf("%s: action type %q is not supported", p, ca.Type)
}

func (b *builder) responseAction(p string, ca *config.ResponseAction) (action, error) {
	switch x := ca.Spec.(type) {
	case *config.AllowAction:
		return allowAct{}, nil
	case *config.DropAction:
		return dropAct{}, nil
	case *config.NoneAction:
		return noneAct{}, nil
	case *config.DelayResponseAction:
		return delayAct(time.Duration(x.Msec) * time.Millisecond), nil
	case *config.LogResponseAction:
		return newLogAct(x.VerboseOnly), nil
	case *config.LimitTTLResponseAction:
		return ttlAct{min: x.Min, max: x.Max, types: x.Types}, nil
	case *config.SetMaxReturnedTTLAction:
		return maxReturnedTTLAct(x.Max), nil
	case *config.SetMaxTTLResponseAction:
		return ttlAct{max: x.Max}, nil
	case *config.SetMinTTLResponseAction:
		return ttlAct{min: x.Min}, nil
	case *config.SetSkipCacheAction:
		return skipCacheAct{}, nil
	case *config.SetTagAction:
		return setTagAct{x.Tag, x.Value}, nil
	case *config.UnsetTagAction:
		return unsetTagAct{x.Tag}, nil
	case *config.DnstapLogAction:
		return b.dnstapAction(p, x)
	case nil:
		return nil, fmt.Errorf("%s: missing", p)
	}
	return nil, fmt.Errorf("%s: response action type %q is not supported", p, ca.Type)
}

func newLogAct(verboseOnly *bool) logAct {
	level := slog.LevelDebug
	if verboseOnly != nil && !*verboseOnly {
		level = slog.LevelInfo
	}
	return logAct{level: level, lim: NewLimiter(logRate, logBurst)}
}

// defaultSpoofTTL is dnsdist's TTL of spoofed records.
const defaultSpoofTTL = 60

func ttlOf(v config.ResponseVars) uint32 {
	if v.TTL == 0 {
		return defaultSpoofTTL
	}
	return v.TTL
}

func varsAnswer(v config.ResponseVars) *Answer {
	a := &Answer{aa: v.SetAA, ad: v.SetAD, ra: -1}
	if v.SetRA != nil {
		a.ra = 0
		if *v.SetRA {
			a.ra = 1
		}
	}
	return a
}

func negativeAnswer(p string, x *config.NegativeAndSOAAction) (action, error) {
	var names [3][]byte
	for i, n := range []struct{ key, v string }{{"zone", x.Zone}, {"mname", x.MName}, {"rname", x.RName}} {
		w, err := nameToWire(n.v)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %v", p, n.key, err)
		}
		names[i] = w
	}
	rd := append(append([]byte{}, names[1]...), names[2]...)
	s := x.SOAParameters
	for _, v := range []uint32{s.Serial, s.Refresh, s.Retry, s.Expire, s.Minimum} {
		rd = binary.BigEndian.AppendUint32(rd, v)
	}
	a := varsAnswer(x.Vars)
	soa := rrTemplate{owner: names[0], typ: 6, ttl: x.TTL, rdata: rd}
	if x.SOAInAuthority {
		a.authority = []rrTemplate{soa}
	} else {
		a.extra = []rrTemplate{soa}
	}
	if x.NXD {
		a.rcode = 3
	}
	return spoofAct{a}, nil
}
