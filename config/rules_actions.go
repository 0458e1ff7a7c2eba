package config

// Action specs: one struct per dnsdist action type, with dnsdist's keys
// (shared/reference/dnsdist-actions-definitions.yml and dnsdist-response-actions-definitions.yml).

// ResponseVars is dnsdist's ResponseConfig: header bits and TTL of a self-generated answer.
type ResponseVars struct {
	SetAA bool   `yaml:"set_aa"`
	SetAD bool   `yaml:"set_ad"`
	SetRA *bool  `yaml:"set_ra"` // default: copy RD
	TTL   uint32 `yaml:"ttl"`    // default 60
}

// SOAParams are the numeric fields of a synthesized SOA record.
type SOAParams struct {
	Serial  uint32 `yaml:"serial"`
	Refresh uint32 `yaml:"refresh"`
	Retry   uint32 `yaml:"retry"`
	Expire  uint32 `yaml:"expire"`
	Minimum uint32 `yaml:"minimum"`
}

type AllowAction struct {
	Type string `yaml:"type"`
}

type DropAction struct {
	Type string `yaml:"type"`
}

type NoneAction struct {
	Type string `yaml:"type"`
}

// ContinueAction runs Action and then goes on with the next rule.
type ContinueAction struct {
	Type   string     `yaml:"type"`
	Action RuleAction `yaml:"action"`
}

type DelayAction struct {
	Type string `yaml:"type"`
	Msec uint32 `yaml:"msec"`
}

type RCodeAction struct {
	Type  string       `yaml:"type"`
	RCode string       `yaml:"rcode"`
	Vars  ResponseVars `yaml:"vars"`
}

type ERCodeAction struct {
	Type  string       `yaml:"type"`
	RCode string       `yaml:"rcode"`
	Vars  ResponseVars `yaml:"vars"`
}

// HTTPStatusAction answers a DoH query with an HTTP status; other protocols ignore it.
type HTTPStatusAction struct {
	Type        string       `yaml:"type"`
	Status      uint16       `yaml:"status"`
	Body        string       `yaml:"body"`
	ContentType string       `yaml:"content_type"`
	Vars        ResponseVars `yaml:"vars"`
}

// LogAction writes a structured log line per matching query (rate-limited). dnsdist's file
// logging is not supported: file_name must be empty, and binary/append/buffered only apply to files.
type LogAction struct {
	Type             string `yaml:"type"`
	FileName         string `yaml:"file_name"`
	Binary           *bool  `yaml:"binary"`
	Append           bool   `yaml:"append"`
	Buffered         bool   `yaml:"buffered"`
	VerboseOnly      *bool  `yaml:"verbose_only"` // default true: logged at debug level
	IncludeTimestamp bool   `yaml:"include_timestamp"`
}

type NegativeAndSOAAction struct {
	Type           string       `yaml:"type"`
	NXD            bool         `yaml:"nxd"`
	Zone           string       `yaml:"zone"`
	TTL            uint32       `yaml:"ttl"`
	MName          string       `yaml:"mname"`
	RName          string       `yaml:"rname"`
	SOAParameters  SOAParams    `yaml:"soa_parameters"`
	SOAInAuthority bool         `yaml:"soa_in_authority"`
	Vars           ResponseVars `yaml:"vars"`
}

type PoolAction struct {
	Type           string `yaml:"type"`
	PoolName       string `yaml:"pool_name"`
	StopProcessing *bool  `yaml:"stop_processing"` // default true
}

// QPSAction drops queries above Limit per second and lets the others continue.
type QPSAction struct {
	Type  string `yaml:"type"`
	Limit uint32 `yaml:"limit"`
}

type QPSPoolAction struct {
	Type           string `yaml:"type"`
	Limit          uint32 `yaml:"limit"`
	PoolName       string `yaml:"pool_name"`
	StopProcessing *bool  `yaml:"stop_processing"` // default true
}

type SetExtendedDNSErrorAction struct {
	Type                 string `yaml:"type"`
	InfoCode             uint16 `yaml:"info_code"`
	ExtraText            string `yaml:"extra_text"`
	ClearExistingEntries *bool  `yaml:"clear_existing_entries"`
}

type SetMaxReturnedTTLAction struct {
	Type string `yaml:"type"`
	Max  uint32 `yaml:"max"`
}

type SetNoRecurseAction struct {
	Type string `yaml:"type"`
}

type SetSkipCacheAction struct {
	Type string `yaml:"type"`
}

type SetTagAction struct {
	Type  string `yaml:"type"`
	Tag   string `yaml:"tag"`
	Value string `yaml:"value"`
}

type UnsetTagAction struct {
	Type string `yaml:"type"`
	Tag  string `yaml:"tag"`
}

type SetTempFailureCacheTTLAction struct {
	Type string `yaml:"type"`
	TTL  uint32 `yaml:"ttl"`
}

type SpoofAction struct {
	Type string       `yaml:"type"`
	IPs  []string     `yaml:"ips"`
	Vars ResponseVars `yaml:"vars"`
}

type SpoofCNAMEAction struct {
	Type  string       `yaml:"type"`
	CNAME string       `yaml:"cname"`
	Vars  ResponseVars `yaml:"vars"`
}

// SpoofRawAction answers with raw record data, written with \DDD escapes for non-printable bytes.
type SpoofRawAction struct {
	Type        string       `yaml:"type"`
	Answers     []string     `yaml:"answers"`
	QTypeForAny string       `yaml:"qtype_for_any"`
	Vars        ResponseVars `yaml:"vars"`
}

// TCAction answers a UDP query with TC=1, pushing the client to TCP; it does nothing on streams.
type TCAction struct {
	Type string `yaml:"type"`
}

var actionTypes = func() typeTable {
	t := typeTable{}
	t.add("Allow", func() any { return &AllowAction{} })
	t.add("Drop", func() any { return &DropAction{} })
	t.add("None", func() any { return &NoneAction{} })
	t.add("Continue", func() any { return &ContinueAction{} })
	t.add("Delay", func() any { return &DelayAction{} })
	t.add("RCode", func() any { return &RCodeAction{} })
	t.add("ERCode", func() any { return &ERCodeAction{} })
	t.add("HTTPStatus", func() any { return &HTTPStatusAction{} })
	t.add("Log", func() any { return &LogAction{} })
	t.add("NegativeAndSOA", func() any { return &NegativeAndSOAAction{} })
	t.add("Pool", func() any { return &PoolAction{} })
	t.add("QPS", func() any { return &QPSAction{} })
	t.add("QPSPool", func() any { return &QPSPoolAction{} })
	t.add("SetExtendedDNSError", func() any { return &SetExtendedDNSErrorAction{} })
	t.add("SetMaxReturnedTTL", func() any { return &SetMaxReturnedTTLAction{} })
	t.add("SetNoRecurse", func() any { return &SetNoRecurseAction{} })
	t.add("SetSkipCache", func() any { return &SetSkipCacheAction{} })
	t.add("SetTag", func() any { return &SetTagAction{} })
	t.add("UnsetTag", func() any { return &UnsetTagAction{} })
	t.add("SetTempFailureCacheTTL", func() any { return &SetTempFailureCacheTTLAction{} })
	t.add("Spoof", func() any { return &SpoofAction{} })
	t.add("SpoofCNAME", func() any { return &SpoofCNAMEAction{} })
	t.add("SpoofRaw", func() any { return &SpoofRawAction{} })
	t.add("TC", func() any { return &TCAction{} })
	t.add("DnstapLog", func() any { return &DnstapLogAction{} })
	t.add("SetDisableECS", func() any { return &SetDisableECSAction{} })
	t.add("SetECS", func() any { return &SetECSAction{} })
	t.add("SetECSOverride", func() any { return &SetECSOverrideAction{} })
	t.add("SetECSPrefixLength", func() any { return &SetECSPrefixLengthAction{} })
	for _, n := range []string{"ByName", "KeyValueStoreLookup", "KeyValueStoreRangeLookup", "Lua", "LuaFFI",
		"LuaFFIPerThread", "RemoteLog", "SetAdditionalProxyProtocolValue", "SetDisableValidation",
		"SetEDNSOption", "SetMacAddr", "SetProxyProtocolValues",
		"SetTrace", "SNMPTrap", "SpoofPacket", "SpoofSVC", "Tee"} {
		t.add(n, nil)
	}
	return t
}()

// Response action specs.

type DelayResponseAction struct {
	Type string `yaml:"type"`
	Msec uint32 `yaml:"msec"`
}

type LogResponseAction struct {
	Type             string `yaml:"type"`
	FileName         string `yaml:"file_name"`
	Append           bool   `yaml:"append"`
	Buffered         bool   `yaml:"buffered"`
	VerboseOnly      *bool  `yaml:"verbose_only"`
	IncludeTimestamp bool   `yaml:"include_timestamp"`
}

// LimitTTLResponseAction clamps the TTLs of the response's records into [Min, Max]
// (Max 0: no upper bound); Types restricts it to those record types.
type LimitTTLResponseAction struct {
	Type  string   `yaml:"type"`
	Min   uint32   `yaml:"min"`
	Max   uint32   `yaml:"max"`
	Types []uint16 `yaml:"types"`
}

type SetMaxTTLResponseAction struct {
	Type string `yaml:"type"`
	Max  uint32 `yaml:"max"`
}

type SetMinTTLResponseAction struct {
	Type string `yaml:"type"`
	Min  uint32 `yaml:"min"`
}

var responseActionTypes = func() typeTable {
	t := typeTable{}
	t.add("Allow", func() any { return &AllowAction{} })
	t.add("Drop", func() any { return &DropAction{} })
	t.add("None", func() any { return &NoneAction{} })
	t.add("Delay", func() any { return &DelayResponseAction{} })
	t.add("Log", func() any { return &LogResponseAction{} })
	t.add("LimitTTL", func() any { return &LimitTTLResponseAction{} })
	t.add("SetMaxReturnedTTL", func() any { return &SetMaxReturnedTTLAction{} })
	t.add("SetMaxTTL", func() any { return &SetMaxTTLResponseAction{} })
	t.add("SetMinTTL", func() any { return &SetMinTTLResponseAction{} })
	t.add("SetSkipCache", func() any { return &SetSkipCacheAction{} })
	t.add("SetTag", func() any { return &SetTagAction{} })
	t.add("UnsetTag", func() any { return &UnsetTagAction{} })
	t.add("DnstapLog", func() any { return &DnstapLogAction{} })
	for _, n := range []string{"ByName", "ClearRecordTypes", "Lua", "LuaFFI", "LuaFFIPerThread",
		"RemoteLog", "SetEDNSOption", "SetExtendedDNSError", "SetReducedTTL", "SNMPTrap", "TC"} {
		t.add(n, nil)
	}
	return t
}()
