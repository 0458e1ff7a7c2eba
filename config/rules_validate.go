package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// validate checks the values of the rules that decoding could not: names, networks, codes,
// expressions and ranges. Every error names the key path.
func (r *Rules) validate(v *validator) {
	for i := range r.QueryRules {
		p := fmt.Sprintf("query_rules[%d]", i)
		validateSelector(v, p+".selector", &r.QueryRules[i].Selector)
		validateAction(v, p+".action", &r.QueryRules[i].Action)
	}
	for _, l := range []struct {
		key   string
		rules []ResponseRule
	}{{"response_rules", r.ResponseRules}, {"cache_hit_response_rules", r.CacheHitResponseRules}, {"self_answered_response_rules", r.SelfAnsweredResponseRules}} {
		for i := range l.rules {
			p := fmt.Sprintf("%s[%d]", l.key, i)
			validateSelector(v, p+".selector", &l.rules[i].Selector)
			validateResponseAction(v, p+".action", &l.rules[i].Action)
		}
	}
	if a := r.DynamicRulesSettings.DefaultAction; a != "" && (CanonicalDynamicAction(a) == "" || CanonicalDynamicAction(a) == "SetTag") {
		v.errorf("dynamic_rules_settings.default_action", "must be one of Drop, NoOp, NoRecurse, NXDomain, Refused, Truncate, got %q", a)
	}
	if pi := r.DynamicRulesSettings.PurgeInterval; pi != nil && *pi < 0 {
		v.errorf("dynamic_rules_settings.purge_interval", "must not be negative")
	}
	for i := range r.DynamicRules {
		validateDynamicGroup(v, fmt.Sprintf("dynamic_rules[%d]", i), &r.DynamicRules[i])
	}
}

func validateSelector(v *validator, p string, s *RuleSelector) {
	if s.Spec == nil {
		v.errorf(p, "is required")
		return
	}
	switch x := s.Spec.(type) {
	case *AndSelector:
		if len(x.Selectors) == 0 {
			v.errorf(p+".selectors", "must list at least one selector")
		}
		for i := range x.Selectors {
			validateSelector(v, fmt.Sprintf("%s.selectors[%d]", p, i), &x.Selectors[i])
		}
	case *OrSelector:
		if len(x.Selectors) == 0 {
			v.errorf(p+".selectors", "must list at least one selector")
		}
		for i := range x.Selectors {
			validateSelector(v, fmt.Sprintf("%s.selectors[%d]", p, i), &x.Selectors[i])
		}
	case *NotSelector:
		validateSelector(v, p+".selector", &x.Selector)
	case *QNameSelector:
		checkName(v, p+".qname", x.QName)
	case *QNameSetSelector:
		checkNames(v, p+".qnames", x.QNames)
	case *QNameSuffixSelector:
		checkNames(v, p+".suffixes", x.Suffixes)
	case *RegexSelector:
		checkRegexp(v, p+".expression", x.Expression)
	case *RE2Selector:
		checkRegexp(v, p+".expression", x.Expression)
	case *HTTPPathRegexSelector:
		checkRegexp(v, p+".expression", x.Expression)
	case *HTTPHeaderSelector:
		if x.Header == "" {
			v.errorf(p+".header", "is required")
		}
		checkRegexp(v, p+".expression", x.Expression)
	case *QTypeSelector:
		if _, err := ParseQType(x.QType, x.NumericValue); err != nil {
			v.errorf(p+".qtype", "%v", err)
		}
	case *QClassSelector:
		if _, err := ParseQClass(x.QClass, x.NumericValue); err != nil {
			v.errorf(p+".qclass", "%v", err)
		}
	case *OpcodeSelector:
		if _, err := ParseOpcode(x.Code); err != nil {
			v.errorf(p+".code", "%v", err)
		}
	case *PayloadSizeSelector:
		switch x.Comparison {
		case "equal", "greater", "greaterOrEqual", "smaller", "smallerOrEqual":
		default:
			v.errorf(p+".comparison", "must be equal, greater, greaterOrEqual, smaller or smallerOrEqual, got %q", x.Comparison)
		}
	case *QNameLabelsCountSelector:
		if x.MaxLabelsCount < x.MinLabelsCount {
			v.errorf(p+".max_labels_count", "is below min_labels_count")
		}
	case *QNameWireLengthSelector:
		if x.Max < x.Min {
			v.errorf(p+".max", "is below min")
		}
	case *NetmaskGroupSelector:
		if x.NetmaskGroupName != "" {
			v.errorf(p+".netmask_group_name", "named netmask groups are not supported by dnsfront; list netmasks instead")
		}
		if len(x.Netmasks) == 0 {
			v.errorf(p+".netmasks", "must list at least one network")
		}
		for i, n := range x.Netmasks {
			if _, err := ParsePrefix(n); err != nil {
				v.errorf(fmt.Sprintf("%s.netmasks[%d]", p, i), "%v", err)
			}
		}
	case *MaxQPSSelector:
		if x.QPS == 0 {
			v.errorf(p+".qps", "must be at least 1")
		}
	case *MaxQPSIPSelector:
		if x.QPS == 0 {
			v.errorf(p+".qps", "must be at least 1")
		}
		if x.IPv4Mask != nil && (*x.IPv4Mask == 0 || *x.IPv4Mask > 32) {
			v.errorf(p+".ipv4_mask", "must be between 1 and 32 (MaxQPS limits all clients together)")
		}
		if x.IPv6Mask != nil && (*x.IPv6Mask == 0 || *x.IPv6Mask > 128) {
			v.errorf(p+".ipv6_mask", "must be between 1 and 128 (MaxQPS limits all clients together)")
		}
		if x.Shards != nil && (*x.Shards == 0 || *x.Shards > 1024) {
			v.errorf(p+".shards", "must be between 1 and 1024")
		}
		if x.ScanFraction != nil && *x.ScanFraction == 0 {
			v.errorf(p+".scan_fraction", "must be at least 1")
		}
	case *IncomingProtocolSelector:
		if _, ok := IncomingProtocols[x.Protocol]; !ok {
			v.errorf(p+".protocol", "must be one of DoUDP, DoTCP, DoT, DoH, DoQ, DoH3, got %q", x.Protocol)
		}
	case *PoolAvailableSelector:
		if x.Pool == "" {
			v.errorf(p+".pool", "is required (the default pool is named \"default\")")
		}
	case *TagSelector:
		if x.Tag == "" {
			v.errorf(p+".tag", "is required")
		}
	case *ProbaSelector:
		if x.Probability < 0 || x.Probability > 1 {
			v.errorf(p+".probability", "must be between 0 and 1")
		}
	case *RCodeSelector:
		if _, err := ParseRCode(x.RCode); err != nil {
			v.errorf(p+".rcode", "%v", err)
		}
	case *ERCodeSelector:
		if _, err := ParseRCode(x.RCode); err != nil {
			v.errorf(p+".rcode", "%v", err)
		}
	case *RecordsCountSelector:
		checkSection(v, p+".section", x.Section)
		if x.Maximum < x.Minimum {
			v.errorf(p+".maximum", "is below minimum")
		}
	case *RecordsTypeCountSelector:
		checkSection(v, p+".section", x.Section)
		if x.Maximum < x.Minimum {
			v.errorf(p+".maximum", "is below minimum")
		}
	}
}

func validateAction(v *validator, p string, a *RuleAction) {
	if a.Spec == nil {
		v.errorf(p, "is required")
		return
	}
	validateECSAction(v, p, a.Spec)
	switch x := a.Spec.(type) {
	case *ContinueAction:
		validateAction(v, p+".action", &x.Action)
	case *RCodeAction:
		if _, err := ParseRCode(x.RCode); err != nil {
			v.errorf(p+".rcode", "%v", err)
		}
	case *ERCodeAction:
		if _, err := ParseRCode(x.RCode); err != nil {
			v.errorf(p+".rcode", "%v", err)
		}
	case *HTTPStatusAction:
		if x.Status < 100 || x.Status > 599 {
			v.errorf(p+".status", "must be an HTTP status between 100 and 599")
		}
	case *LogAction:
		checkLogFile(v, p, x.FileName)
	case *NegativeAndSOAAction:
		checkName(v, p+".zone", x.Zone)
		checkName(v, p+".mname", x.MName)
		checkName(v, p+".rname", x.RName)
	case *PoolAction:
		if x.PoolName == "" {
			v.errorf(p+".pool_name", "is required")
		}
	case *QPSAction:
		if x.Limit == 0 {
			v.errorf(p+".limit", "must be at least 1")
		}
	case *QPSPoolAction:
		if x.Limit == 0 {
			v.errorf(p+".limit", "must be at least 1")
		}
		if x.PoolName == "" {
			v.errorf(p+".pool_name", "is required")
		}
	case *SetExtendedDNSErrorAction:
		if len(x.ExtraText) > 1024 {
			v.errorf(p+".extra_text", "must be at most 1024 bytes")
		}
	case *SetTagAction:
		if x.Tag == "" {
			v.errorf(p+".tag", "is required")
		}
	case *UnsetTagAction:
		if x.Tag == "" {
			v.errorf(p+".tag", "is required")
		}
	case *SpoofAction:
		if len(x.IPs) == 0 {
			v.errorf(p+".ips", "must list at least one address")
		}
		for i, s := range x.IPs {
			if _, err := netip.ParseAddr(s); err != nil {
				v.errorf(fmt.Sprintf("%s.ips[%d]", p, i), "%q is not an IP address", s)
			}
		}
	case *SpoofCNAMEAction:
		checkName(v, p+".cname", x.CNAME)
	case *SpoofRawAction:
		if len(x.Answers) == 0 {
			v.errorf(p+".answers", "must list at least one answer")
		}
		for i, s := range x.Answers {
			if _, err := ParseRawRData(s); err != nil {
				v.errorf(fmt.Sprintf("%s.answers[%d]", p, i), "%v", err)
			}
		}
		if x.QTypeForAny != "" {
			if _, err := ParseQType(x.QTypeForAny, 0); err != nil {
				v.errorf(p+".qtype_for_any", "%v", err)
			}
		}
	}
}

func validateResponseAction(v *validator, p string, a *ResponseAction) {
	if a.Spec == nil {
		v.errorf(p, "is required")
		return
	}
	switch x := a.Spec.(type) {
	case *LogResponseAction:
		checkLogFile(v, p, x.FileName)
	case *LimitTTLResponseAction:
		if x.Max != 0 && x.Max < x.Min {
			v.errorf(p+".max", "is below min")
		}
	case *SetTagAction:
		if x.Tag == "" {
			v.errorf(p+".tag", "is required")
		}
	case *UnsetTagAction:
		if x.Tag == "" {
			v.errorf(p+".tag", "is required")
		}
	}
}

func validateDynamicGroup(v *validator, p string, g *DynamicRulesGroup) {
	if g.MaskIPv4 != nil && (*g.MaskIPv4 < 0 || *g.MaskIPv4 > 32) {
		v.errorf(p+".mask_ipv4", "must be between 0 and 32")
	}
	if g.MaskIPv6 != nil && (*g.MaskIPv6 < 0 || *g.MaskIPv6 > 128) {
		v.errorf(p+".mask_ipv6", "must be between 0 and 128")
	}
	if g.MaskPort != 0 {
		v.errorf(p+".mask_port", "port ranges are not supported by dnsfront; must be 0")
	}
	for i, s := range g.ExcludeRanges {
		if _, err := ParsePrefix(s); err != nil {
			v.errorf(fmt.Sprintf("%s.exclude_ranges[%d]", p, i), "%v", err)
		}
	}
	for i, s := range g.IncludeRanges {
		if _, err := ParsePrefix(s); err != nil {
			v.errorf(fmt.Sprintf("%s.include_ranges[%d]", p, i), "%v", err)
		}
	}
	checkNames(v, p+".exclude_domains", g.ExcludeDomains)
	for i := range g.Rules {
		validateDynamicRule(v, fmt.Sprintf("%s.rules[%d]", p, i), &g.Rules[i])
	}
}

func validateDynamicRule(v *validator, p string, r *DynamicRule) {
	known := false
	for _, t := range dynamicRuleTypes {
		known = known || r.Type == t
	}
	if !known {
		v.errorf(p+".type", "must be one of %s, got %q", strings.Join(dynamicRuleTypes, ", "), r.Type)
		return
	}
	if r.VisitorFunctionName != "" || r.VisitorFunctionCode != "" || r.VisitorFunctionFile != "" {
		v.errorf(p+".visitor_function_name", "Lua visitor functions are not supported by dnsfront; suffix-match is configured by rate, rcode and suffix_labels")
	}
	if r.Seconds < 1 || r.Seconds > 3600 {
		v.errorf(p+".seconds", "must be between 1 and 3600, got %d", r.Seconds)
	}
	if r.ActionDuration < 1 {
		v.errorf(p+".action_duration", "must be at least 1 second")
	}
	if a := r.Action; a != "" && CanonicalDynamicAction(a) == "" {
		v.errorf(p+".action", "must be one of Drop, NoOp, NoRecurse, NXDomain, Refused, Truncate, SetTag, got %q", a)
	}
	if CanonicalDynamicAction(r.Action) == "SetTag" && r.TagName == "" {
		v.errorf(p+".tag_name", "is required with action SetTag")
	}
	switch r.Type {
	case "query-rate", "rcode-rate", "qtype-rate", "response-byte-rate", "suffix-match":
		if r.Rate < 1 {
			v.errorf(p+".rate", "must be at least 1")
		}
		if r.WarningRate < 0 || r.WarningRate > r.Rate {
			v.errorf(p+".warning_rate", "must be between 0 and rate")
		}
	case "rcode-ratio", "cache-miss-ratio", "allowed-rcodes-ratio":
		if r.Ratio <= 0 || r.Ratio > 1 {
			v.errorf(p+".ratio", "must be above 0 and at most 1")
		}
		if r.WarningRatio < 0 || r.WarningRatio > r.Ratio {
			v.errorf(p+".warning_ratio", "must be between 0 and ratio")
		}
	}
	switch r.Type {
	case "rcode-rate", "rcode-ratio":
		if _, err := ParseRCode(r.RCode); err != nil {
			v.errorf(p+".rcode", "%v", err)
		}
	case "suffix-match":
		if r.RCode != "" {
			if _, err := ParseRCode(r.RCode); err != nil {
				v.errorf(p+".rcode", "%v", err)
			}
		}
		if r.SuffixLabels < 0 || r.SuffixLabels > 127 {
			v.errorf(p+".suffix_labels", "must be between 0 and 127")
		}
	case "qtype-rate":
		if _, err := ParseQType(r.QType, 0); err != nil {
			v.errorf(p+".qtype", "%v", err)
		}
	case "allowed-rcodes-ratio":
		for i, s := range r.AllowedRCodes {
			if _, err := ParseRCode(s); err != nil {
				v.errorf(fmt.Sprintf("%s.allowed_rcodes[%d]", p, i), "%v", err)
			}
		}
	}
	if r.Type != "suffix-match" && r.SuffixLabels != 0 {
		v.errorf(p+".suffix_labels", "only applies to suffix-match rules")
	}
}

func checkName(v *validator, p, name string) {
	if _, err := ParseDNSName(name); err != nil {
		v.errorf(p, "%v", err)
	}
}

func checkNames(v *validator, p string, names []string) {
	for i, n := range names {
		checkName(v, fmt.Sprintf("%s[%d]", p, i), n)
	}
}

func checkRegexp(v *validator, p, expr string) {
	if _, err := regexp.Compile(expr); err != nil {
		v.errorf(p, "%v", err)
	}
}

func checkSection(v *validator, p string, s uint8) {
	if s > 3 {
		v.errorf(p, "must be 0 (question), 1 (answer), 2 (authority) or 3 (additional), got %d", s)
	}
}

func checkLogFile(v *validator, p, file string) {
	if file != "" {
		v.errorf(p+".file_name", "logging to a file is not supported by dnsfront; leave it empty to log through the server's structured log")
	}
}

// IncomingProtocols maps dnsdist's protocol names (IncomingProtocol selector) to themselves.
var IncomingProtocols = map[string]struct{}{"DoUDP": {}, "DoTCP": {}, "DoT": {}, "DoH": {}, "DoQ": {}, "DoH3": {}}

// ParseDNSName checks a domain name and returns it fully qualified and lower-cased.
func ParseDNSName(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("a domain name is required")
	}
	if _, ok := dns.IsDomainName(s); !ok {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	return strings.ToLower(dns.Fqdn(s)), nil
}

// ParseRCode reads a response code by name ("NXDOMAIN", "NoError", case-insensitive) or number.
func ParseRCode(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 4095 {
			return 0, fmt.Errorf("rcode %d is out of range 0-4095", n)
		}
		return n, nil
	}
	u := strings.ToUpper(s)
	if u == "BADVERS" { // shares 16 with BADSIG, which is the only one in miekg/dns's table
		return dns.RcodeBadVers, nil
	}
	if rc, ok := dns.StringToRcode[u]; ok {
		return rc, nil
	}
	return 0, fmt.Errorf("unknown rcode %q (want e.g. NOERROR, NXDOMAIN, SERVFAIL, REFUSED or a number)", s)
}

// ParseQType reads a query type by name ("AAAA", "TYPE65") or, when name is empty, numeric.
func ParseQType(name string, numeric uint16) (uint16, error) {
	if name == "" {
		if numeric == 0 {
			return 0, fmt.Errorf("a qtype name or numeric_value is required")
		}
		return numeric, nil
	}
	u := strings.ToUpper(name)
	if t, ok := dns.StringToType[u]; ok {
		return t, nil
	}
	if n, ok := strings.CutPrefix(u, "TYPE"); ok {
		if t, err := strconv.ParseUint(n, 10, 16); err == nil {
			return uint16(t), nil
		}
	}
	return 0, fmt.Errorf("unknown qtype %q", name)
}

// ParseQClass reads a query class by name ("IN", "CH") or, when name is empty, numeric.
func ParseQClass(name string, numeric uint16) (uint16, error) {
	if name == "" {
		if numeric == 0 {
			return 0, fmt.Errorf("a qclass name or numeric_value is required")
		}
		return numeric, nil
	}
	u := strings.ToUpper(name)
	switch u {
	case "CHAOS":
		return dns.ClassCHAOS, nil
	case "HESIOD":
		return dns.ClassHESIOD, nil
	}
	if c, ok := dns.StringToClass[u]; ok {
		return c, nil
	}
	if n, ok := strings.CutPrefix(u, "CLASS"); ok {
		if c, err := strconv.ParseUint(n, 10, 16); err == nil {
			return uint16(c), nil
		}
	}
	return 0, fmt.Errorf("unknown qclass %q", name)
}

// ParseOpcode reads an opcode by name ("Query", "Notify", "Update", case-insensitive) or number.
func ParseOpcode(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < 16 {
		return n, nil
	}
	if op, ok := dns.StringToOpcode[strings.ToUpper(s)]; ok {
		return op, nil
	}
	return 0, fmt.Errorf("unknown opcode %q (want Query, IQuery, Status, Notify, Update or 0-15)", s)
}

// ParseRawRData decodes SpoofRaw's record data: bytes as written, with \DDD (decimal) and
// \c (the character itself) escapes.
func ParseRawRData(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("%q ends with a lone backslash", s)
		}
		if isDigit(s[i+1]) {
			if i+3 >= len(s) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
				return nil, fmt.Errorf("%q: \\DDD escape needs three digits", s)
			}
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n > 255 {
				return nil, fmt.Errorf("%q: \\%03d is above 255", s, n)
			}
			out = append(out, byte(n))
			i += 3
			continue
		}
		out = append(out, s[i+1])
		i++
	}
	if len(out) > 65535 {
		return nil, fmt.Errorf("record data is longer than 65535 bytes")
	}
	return out, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
