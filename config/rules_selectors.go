package config

// Selector specs: one struct per dnsdist selector type, with dnsdist's keys
// (shared/reference/dnsdist-selectors-definitions.yml). Type repeats the "type" key.

type AllSelector struct {
	Type string `yaml:"type"`
}

type AndSelector struct {
	Type      string         `yaml:"type"`
	Selectors []RuleSelector `yaml:"selectors"`
}

type OrSelector struct {
	Type      string         `yaml:"type"`
	Selectors []RuleSelector `yaml:"selectors"`
}

type NotSelector struct {
	Type     string       `yaml:"type"`
	Selector RuleSelector `yaml:"selector"`
}

type QNameSelector struct {
	Type  string `yaml:"type"`
	QName string `yaml:"qname"`
}

type QNameSetSelector struct {
	Type   string   `yaml:"type"`
	QNames []string `yaml:"qnames"`
}

type QNameSuffixSelector struct {
	Type     string   `yaml:"type"`
	Suffixes []string `yaml:"suffixes"`
	Quiet    bool     `yaml:"quiet"`
}

// RegexSelector searches the query name in presentation form (no trailing dot), ignoring case.
type RegexSelector struct {
	Type       string `yaml:"type"`
	Expression string `yaml:"expression"`
}

// RE2Selector matches the whole query name in presentation form (no trailing dot), case-sensitive.
type RE2Selector struct {
	Type       string `yaml:"type"`
	Expression string `yaml:"expression"`
}

type QTypeSelector struct {
	Type         string `yaml:"type"`
	QType        string `yaml:"qtype"`
	NumericValue uint16 `yaml:"numeric_value"`
}

type QClassSelector struct {
	Type         string `yaml:"type"`
	QClass       string `yaml:"qclass"`
	NumericValue uint16 `yaml:"numeric_value"`
}

type OpcodeSelector struct {
	Type string `yaml:"type"`
	Code string `yaml:"code"`
}

type RDSelector struct {
	Type string `yaml:"type"`
}

type DNSSECSelector struct {
	Type string `yaml:"type"`
}

type EDNSOptionSelector struct {
	Type       string `yaml:"type"`
	OptionCode uint16 `yaml:"option_code"`
}

type EDNSVersionSelector struct {
	Type    string `yaml:"type"`
	Version uint8  `yaml:"version"`
}

// PayloadSizeSelector compares the size of the DNS message.
type PayloadSizeSelector struct {
	Type       string `yaml:"type"`
	Comparison string `yaml:"comparison"` // equal, greater, greaterOrEqual, smaller, smallerOrEqual
	Size       uint16 `yaml:"size"`
}

type QNameLabelsCountSelector struct {
	Type           string `yaml:"type"`
	MinLabelsCount uint16 `yaml:"min_labels_count"`
	MaxLabelsCount uint16 `yaml:"max_labels_count"`
}

type QNameWireLengthSelector struct {
	Type string `yaml:"type"`
	Min  uint16 `yaml:"min"`
	Max  uint16 `yaml:"max"`
}

type NetmaskGroupSelector struct {
	Type             string   `yaml:"type"`
	NetmaskGroupName string   `yaml:"netmask_group_name"`
	Netmasks         []string `yaml:"netmasks"`
	Source           *bool    `yaml:"source"` // default true: match the client's address
	Quiet            bool     `yaml:"quiet"`
}

type MaxQPSSelector struct {
	Type  string `yaml:"type"`
	QPS   uint32 `yaml:"qps"`
	Burst uint32 `yaml:"burst"`
}

type MaxQPSIPSelector struct {
	Type         string  `yaml:"type"`
	QPS          uint32  `yaml:"qps"`
	IPv4Mask     *uint8  `yaml:"ipv4_mask"`     // default 32
	IPv6Mask     *uint8  `yaml:"ipv6_mask"`     // default 64
	Burst        uint32  `yaml:"burst"`         // default qps
	Expiration   *uint32 `yaml:"expiration"`    // seconds, default 300
	CleanupDelay *uint32 `yaml:"cleanup_delay"` // seconds, default 60
	ScanFraction *uint32 `yaml:"scan_fraction"` // default 10
	Shards       *uint32 `yaml:"shards"`        // default 10
}

type TCPSelector struct {
	Type string `yaml:"type"`
	TCP  bool   `yaml:"tcp"`
}

type IncomingProtocolSelector struct {
	Type     string `yaml:"type"`
	Protocol string `yaml:"protocol"` // DoUDP, DoTCP, DoT, DoH (dnsdist's names)
}

type SNISelector struct {
	Type       string `yaml:"type"`
	ServerName string `yaml:"server_name"`
}

type HTTPHeaderSelector struct {
	Type       string `yaml:"type"`
	Header     string `yaml:"header"`
	Expression string `yaml:"expression"`
}

type HTTPPathSelector struct {
	Type string `yaml:"type"`
	Path string `yaml:"path"`
}

type HTTPPathRegexSelector struct {
	Type       string `yaml:"type"`
	Expression string `yaml:"expression"`
}

type DSTPortSelector struct {
	Type string `yaml:"type"`
	Port uint16 `yaml:"port"`
}

type PoolAvailableSelector struct {
	Type string `yaml:"type"`
	Pool string `yaml:"pool"`
}

type TagSelector struct {
	Type            string `yaml:"type"`
	Tag             string `yaml:"tag"`
	Value           string `yaml:"value"`
	EmptyAsWildcard *bool  `yaml:"empty-as-wildcard"` // default true
}

type ProbaSelector struct {
	Type        string  `yaml:"type"`
	Probability float64 `yaml:"probability"`
}

// RCodeSelector matches a response's RCODE (a name such as "NXDOMAIN" or a number).
type RCodeSelector struct {
	Type  string `yaml:"type"`
	RCode string `yaml:"rcode"`
}

// ERCodeSelector matches a response's extended RCODE (header and OPT together).
type ERCodeSelector struct {
	Type  string `yaml:"type"`
	RCode string `yaml:"rcode"`
}

// RecordsCountSelector counts the records of a section (0 question, 1 answer, 2 authority,
// 3 additional).
type RecordsCountSelector struct {
	Type    string `yaml:"type"`
	Section uint8  `yaml:"section"`
	Minimum uint16 `yaml:"minimum"`
	Maximum uint16 `yaml:"maximum"`
}

type RecordsTypeCountSelector struct {
	Type       string `yaml:"type"`
	Section    uint8  `yaml:"section"`
	RecordType uint16 `yaml:"record_type"`
	Minimum    uint16 `yaml:"minimum"`
	Maximum    uint16 `yaml:"maximum"`
}

var selectorTypes = func() typeTable {
	t := typeTable{}
	t.add("All", func() any { return &AllSelector{} })
	t.add("And", func() any { return &AndSelector{} })
	t.add("Or", func() any { return &OrSelector{} })
	t.add("Not", func() any { return &NotSelector{} })
	t.add("QName", func() any { return &QNameSelector{} })
	t.add("QNameSet", func() any { return &QNameSetSelector{} })
	t.add("QNameSuffix", func() any { return &QNameSuffixSelector{} })
	t.add("Regex", func() any { return &RegexSelector{} })
	t.add("RE2", func() any { return &RE2Selector{} })
	t.add("QType", func() any { return &QTypeSelector{} })
	t.add("QClass", func() any { return &QClassSelector{} })
	t.add("Opcode", func() any { return &OpcodeSelector{} })
	t.add("RD", func() any { return &RDSelector{} })
	t.add("DNSSEC", func() any { return &DNSSECSelector{} })
	t.add("EDNSOption", func() any { return &EDNSOptionSelector{} })
	t.add("EDNSVersion", func() any { return &EDNSVersionSelector{} })
	t.add("PayloadSize", func() any { return &PayloadSizeSelector{} })
	t.add("QNameLabelsCount", func() any { return &QNameLabelsCountSelector{} })
	t.add("QNameWireLength", func() any { return &QNameWireLengthSelector{} })
	t.add("NetmaskGroup", func() any { return &NetmaskGroupSelector{} })
	t.add("MaxQPS", func() any { return &MaxQPSSelector{} })
	t.add("MaxQPSIP", func() any { return &MaxQPSIPSelector{} })
	t.add("TCP", func() any { return &TCPSelector{} })
	t.add("IncomingProtocol", func() any { return &IncomingProtocolSelector{} })
	t.add("SNI", func() any { return &SNISelector{} })
	t.add("HTTPHeader", func() any { return &HTTPHeaderSelector{} })
	t.add("HTTPPath", func() any { return &HTTPPathSelector{} })
	t.add("HTTPPathRegex", func() any { return &HTTPPathRegexSelector{} })
	t.add("DSTPort", func() any { return &DSTPortSelector{} })
	t.add("PoolAvailable", func() any { return &PoolAvailableSelector{} })
	t.add("Tag", func() any { return &TagSelector{} })
	t.add("Proba", func() any { return &ProbaSelector{} })
	t.add("RCode", func() any { return &RCodeSelector{} })
	t.add("ERCode", func() any { return &ERCodeSelector{} })
	t.add("RecordsCount", func() any { return &RecordsCountSelector{} })
	t.add("RecordsTypeCount", func() any { return &RecordsTypeCountSelector{} })
	for _, n := range []string{"ByName", "KeyValueStoreLookup", "KeyValueStoreRangeLookup", "Lua", "LuaFFI",
		"LuaFFIPerThread", "PoolOutstanding", "ProxyProtocolValue", "TimedIPSet", "TrailingData"} {
		t.add(n, nil)
	}
	return t
}()
