package config

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Rules is the traffic policy of the configuration file: dnsdist 2.x's query_rules,
// response_rules, cache_hit_response_rules, self_answered_response_rules, dynamic_rules and
// dynamic_rules_settings, with dnsdist's key names, types and units. Selectors and actions are
// written as dnsdist writes them, a mapping with a "type" key:
//
//	query_rules:
//	  - name: "spoof a blocked zone"
//	    selector: { type: "QNameSuffix", suffixes: ["blocked.example."] }
//	    action: { type: "Spoof", ips: ["192.0.2.99"] }
//
// It is embedded in Config (inline), so its keys sit at the top level of the file.
type Rules struct {
	QueryRules                []QueryRule          `yaml:"query_rules"`
	ResponseRules             []ResponseRule       `yaml:"response_rules"`
	CacheHitResponseRules     []ResponseRule       `yaml:"cache_hit_response_rules"`
	SelfAnsweredResponseRules []ResponseRule       `yaml:"self_answered_response_rules"`
	DynamicRules              []DynamicRulesGroup  `yaml:"dynamic_rules"`
	DynamicRulesSettings      DynamicRulesSettings `yaml:"dynamic_rules_settings"`
}

// QueryRule is dnsdist's query_rule: a selector and the action taken when it matches.
type QueryRule struct {
	Name     string       `yaml:"name"`
	UUID     string       `yaml:"uuid"`
	Selector RuleSelector `yaml:"selector"`
	Action   RuleAction   `yaml:"action"`
}

// ResponseRule is dnsdist's response_rule.
type ResponseRule struct {
	Name     string         `yaml:"name"`
	UUID     string         `yaml:"uuid"`
	Selector RuleSelector   `yaml:"selector"`
	Action   ResponseAction `yaml:"action"`
}

// RuleSelector is one selector. Spec points to the struct of its type (*QNameSuffixSelector,
// *AndSelector, ...); Type is the canonical dnsdist name ("QNameSuffix").
type RuleSelector struct {
	Type string
	Spec any
}

// RuleAction is one query action; Spec points to the struct of its type (*SpoofAction, ...).
type RuleAction struct {
	Type string
	Spec any
}

// ResponseAction is one response action; Spec points to the struct of its type.
type ResponseAction struct {
	Type string
	Spec any
}

// typeTable maps the lower-cased dnsdist type name to its canonical spelling and a constructor
// of its spec; a nil constructor marks a dnsdist type that dnsfront does not implement.
type typeTable map[string]typeEntry

type typeEntry struct {
	name string
	spec func() any
}

func (t typeTable) add(name string, spec func() any) {
	t[strings.ToLower(name)] = typeEntry{name, spec}
}

// UnmarshalYAML implements yaml.NodeUnmarshaler.
func (s *RuleSelector) UnmarshalYAML(node ast.Node) error {
	var err error
	s.Type, s.Spec, err = decodeTyped(node, "selector", selectorTypes)
	return err
}

// UnmarshalYAML implements yaml.NodeUnmarshaler.
func (a *RuleAction) UnmarshalYAML(node ast.Node) error {
	var err error
	a.Type, a.Spec, err = decodeTyped(node, "action", actionTypes)
	return err
}

// UnmarshalYAML implements yaml.NodeUnmarshaler.
func (a *ResponseAction) UnmarshalYAML(node ast.Node) error {
	var err error
	a.Type, a.Spec, err = decodeTyped(node, "response action", responseActionTypes)
	return err
}

// decodeTyped reads the "type" key of a mapping and decodes the whole mapping into the spec
// of that type, rejecting keys the type does not have. Errors carry the position of the
// offending token, so that Parse reports file:line and the key path.
func decodeTyped(node ast.Node, what string, table typeTable) (string, any, error) {
	var values []*ast.MappingValueNode
	switch n := node.(type) {
	case *ast.MappingNode:
		values = n.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{n}
	default:
		return "", nil, &yaml.SyntaxError{Message: fmt.Sprintf("a %s is a mapping with a \"type\" key", what), Token: node.GetToken()}
	}
	var typeNode ast.Node
	for _, mv := range values {
		if mv.Key != nil && mv.Key.String() == "type" {
			typeNode = mv.Value
		}
	}
	if typeNode == nil {
		return "", nil, &yaml.SyntaxError{Message: fmt.Sprintf("%s has no \"type\"", what), Token: node.GetToken()}
	}
	name := strings.Trim(strings.TrimSpace(typeNode.String()), `"'`)
	e, ok := table[strings.ToLower(name)]
	if !ok {
		return "", nil, &yaml.SyntaxError{Message: fmt.Sprintf("unknown %s type %q (known: %s)", what, name, table.names()), Token: typeNode.GetToken()}
	}
	if e.spec == nil {
		return "", nil, &yaml.SyntaxError{Message: fmt.Sprintf("%s type %q is not supported by dnsfront", what, e.name), Token: typeNode.GetToken()}
	}
	spec := e.spec()
	if err := yaml.NodeToValue(node, spec, yaml.DisallowUnknownField()); err != nil {
		return "", nil, err
	}
	return e.name, spec, nil
}

// names lists the supported types, for error messages.
func (t typeTable) names() string {
	var n []string
	for _, e := range t {
		if e.spec != nil {
			n = append(n, e.name)
		}
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// DynamicRulesSettings is dnsdist's dynamic_rules_settings.
type DynamicRulesSettings struct {
	// PurgeInterval is accepted for dnsdist compatibility; dnsfront drops a block from the
	// published set when it expires, so there is nothing left to purge.
	PurgeInterval *int `yaml:"purge_interval"`
	// DefaultAction is taken by rules whose action is empty (default Drop).
	DefaultAction string `yaml:"default_action"`
}

// DynamicRulesGroup is dnsdist's dynamic_rules: rules that share masks and ranges.
type DynamicRulesGroup struct {
	Name           string        `yaml:"name"`
	MaskIPv4       *int          `yaml:"mask_ipv4"` // default 32
	MaskIPv6       *int          `yaml:"mask_ipv6"` // default 64
	MaskPort       int           `yaml:"mask_port"`
	ExcludeRanges  []string      `yaml:"exclude_ranges"`
	IncludeRanges  []string      `yaml:"include_ranges"`
	ExcludeDomains []string      `yaml:"exclude_domains"`
	Rules          []DynamicRule `yaml:"rules"`
}

// DynamicRule is dnsdist's dynamic_rule. Rates are per second over the last Seconds seconds;
// ActionDuration is in seconds.
type DynamicRule struct {
	Type                       string   `yaml:"type"`
	Seconds                    int      `yaml:"seconds"`
	ActionDuration             int      `yaml:"action_duration"`
	Comment                    string   `yaml:"comment"`
	Rate                       int      `yaml:"rate"`
	Ratio                      float64  `yaml:"ratio"`
	Action                     string   `yaml:"action"`
	WarningRate                int      `yaml:"warning_rate"`
	WarningRatio               float64  `yaml:"warning_ratio"`
	TagName                    string   `yaml:"tag_name"`
	TagValue                   string   `yaml:"tag_value"`
	VisitorFunctionName        string   `yaml:"visitor_function_name"`
	VisitorFunctionCode        string   `yaml:"visitor_function_code"`
	VisitorFunctionFile        string   `yaml:"visitor_function_file"`
	RCode                      string   `yaml:"rcode"`
	AllowedRCodes              []string `yaml:"allowed_rcodes"`
	QType                      string   `yaml:"qtype"`
	MinimumNumberOfResponses   int      `yaml:"minimum_number_of_responses"`
	MinimumGlobalCacheHitRatio float64  `yaml:"minimum_global_cache_hit_ratio"`
	// SuffixLabels is a dnsfront key of the suffix-match rule: the number of rightmost labels
	// that name the attacked zone (0: the query name minus its first label).
	SuffixLabels int `yaml:"suffix_labels"`
}

// Dynamic rule types.
var dynamicRuleTypes = []string{"query-rate", "rcode-rate", "rcode-ratio", "qtype-rate", "cache-miss-ratio", "response-byte-rate", "allowed-rcodes-ratio", "suffix-match"}

// Dynamic block actions, in dnsdist's spelling.
var dynamicActions = map[string]string{
	"drop": "Drop", "noop": "NoOp", "nonop": "NoOp", "norecurse": "NoRecurse", "nxdomain": "NXDomain",
	"refused": "Refused", "truncate": "Truncate", "settag": "SetTag",
}

// CanonicalDynamicAction returns dnsdist's spelling of a dynamic block action ("refused" →
// "Refused"), or "" if it is not one.
func CanonicalDynamicAction(s string) string { return dynamicActions[strings.ToLower(s)] }

// TCPTuning is the per-client part of dnsdist's tuning.tcp: limits on TLS sessions per client,
// the defence against handshake floods.
type TCPTuning struct {
	MaxTLSNewSessionRatePerClient     int  `yaml:"max_tls_new_session_rate_per_client"`
	MaxTLSResumedSessionRatePerClient int  `yaml:"max_tls_resumed_session_rate_per_client"`
	BanDurationForExceedingTCPTLSRate *int `yaml:"ban_duration_for_exceeding_tcp_tls_rate"` // seconds, default 10
	ConnectionsMaskV4                 *int `yaml:"connections_mask_v4"`                     // default 32
	ConnectionsMaskV6                 *int `yaml:"connections_mask_v6"`                     // default 128
}

// ParseRules decodes and validates a document that holds only the keys of Rules (tests and
// tools use it; a configuration file goes through Parse). Errors are Errors, like Parse's.
func ParseRules(name string, data []byte) (rules *Rules, err error) {
	// goccy/go-yaml v1.19.2 panics on some malformed documents (a tag on a sequence's
	// content, found by FuzzParseRules); report them as errors instead.
	defer func() {
		if p := recover(); p != nil {
			rules, err = nil, Errors{{File: name, Msg: fmt.Sprintf("malformed YAML (the decoder failed: %v)", p)}}
		}
	}()
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(name, err, nil)}
	}
	var doc struct {
		Rules `yaml:",inline"`
	}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField())
		if err := dec.Decode(&doc); err != nil {
			return nil, Errors{yamlError(name, err, file)}
		}
	}
	v := &validator{name: name, file: file}
	doc.Rules.validate(v)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	return &doc.Rules, nil
}

// Tuning is the part of dnsdist's tuning section that dnsfront reads.
type Tuning struct {
	TCP TCPTuning `yaml:"tcp"`
}
