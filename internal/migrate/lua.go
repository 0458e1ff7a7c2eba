package migrate

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// FromLua converts the directives of a dnsdist Lua configuration that have a
// dnsfront equivalent: setLocal, addLocal, addTLSLocal, addDOHLocal,
// newServer, setACL, addACL, setServerPolicy, newPacketCache with
// getPool(...):setCache, webserver, setWebserverConfig and
// setTCPRecvTimeout. Every other statement is named, with its line, as not
// carried over. Only literal arguments are understood: a value computed by
// Lua code is named too.
func FromLua(name string, data []byte) (*Result, error) {
	toks, err := lexLua(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	l := &luaConv{converter: converter{name: name}, p: &luaParser{toks: toks}, vars: map[string]luaValue{}}
	l.run()
	return l.finish(l.tree())
}

// luaValue is a literal: string, float64, bool, *luaTable, luaRef (a name
// whose value the converter does not know), or *luaCall.
type luaValue any

type luaRef string

type luaTable struct {
	array  []luaValue
	keys   []string // named fields, in source order
	fields map[string]luaValue
}

type luaCall struct {
	fn   string
	args []luaValue
	line int
}

type luaConv struct {
	converter
	p    *luaParser
	vars map[string]luaValue

	binds       []any
	replaceDo53 bool // setLocal replaces dnsdist's default listener
	backends    []any
	acl         []any
	aclSet      bool
	policy      string
	caches      []any
	pools       []any
	webserver   yaml.MapSlice
	tcpIdle     string
	cacheNumber int
}

func (l *luaConv) run() {
	for !l.p.done() {
		start := l.p.i
		line := l.p.peek().line
		st, err := l.p.statement()
		if err != nil {
			l.notef("%s:%d: %v; statement not carried over", l.name, line, err)
			l.p.i = start
			l.p.skipStatement()
			continue
		}
		if st != nil {
			l.apply(st)
		}
	}
}

// statement is an assignment (target non-empty) or a call.
type statement struct {
	target string
	call   *luaCall
	method *luaCall // obj:method(...) where the object is call
	line   int
}

func (l *luaConv) apply(st *statement) {
	c := st.call
	if st.method != nil {
		l.method(st.call, st.method)
		return
	}
	if st.target != "" {
		if c.fn == "newPacketCache" {
			l.vars[st.target] = c
			return
		}
		l.notef("%s:%d: %s = %s(...): not carried over", l.name, c.line, st.target, c.fn)
		return
	}
	at := fmt.Sprintf("%s:%d: %s", l.name, c.line, c.fn)
	switch c.fn {
	case "setLocal", "addLocal":
		if c.fn == "setLocal" {
			l.replaceDo53 = true
			l.dropDo53()
		}
		addr, ok := l.str(at, c, 0)
		if !ok {
			return
		}
		b := yaml.MapSlice{{Key: "listen_address", Value: addr}, {Key: "protocol", Value: "Do53"}}
		b = l.listenOptions(at, b, l.table(c, 1))
		l.binds = append(l.binds, b)
	case "addTLSLocal":
		l.tlsLocal(at, c, "DoT", 3)
	case "addDOHLocal":
		l.tlsLocal(at, c, "DoH", 4)
	case "newServer":
		l.newServer(at, c)
	case "setACL", "addACL":
		if c.fn == "setACL" {
			l.acl, l.aclSet = nil, true
		}
		for _, s := range l.strings(at, c, 0) {
			l.acl = append(l.acl, s)
		}
		if c.fn == "addACL" && !l.aclSet {
			// dnsdist's default ACL stays in force besides what addACL adds.
			l.acl = append([]any{"127.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "192.168.0.0/16", "172.16.0.0/12", "::1/128", "fc00::/7", "fe80::/10"}, l.acl...)
			l.aclSet = true
		}
	case "setServerPolicy":
		if len(c.args) > 0 {
			if r, ok := c.args[0].(luaRef); ok {
				l.policy = string(r)
				return
			}
		}
		l.notef("%s: the policy must be one of dnsdist's built-in names; not carried over", at)
	case "webserver":
		addr, ok := l.str(at, c, 0)
		if !ok {
			return
		}
		l.webserver = set(l.webserver, "listen_addresses", []any{addr})
		if len(c.args) > 2 {
			if k, ok := c.args[2].(string); ok {
				l.webserver = set(l.webserver, "api_key", k)
			}
		}
		if len(c.args) > 1 {
			l.notef("%s: the web server password is not carried over: dnsfront's admin API takes an API key (webserver.api_key)", at)
		}
	case "setWebserverConfig":
		t := l.table(c, 0)
		if t == nil {
			return
		}
		for _, k := range t.keys {
			v := t.fields[k]
			switch k {
			case "apiKey":
				l.webserver = set(l.webserver, "api_key", v)
			case "acl":
				l.webserver = set(l.webserver, "acl", l.list(v))
			default:
				l.notef("%s: option %s: not carried over", at, k)
			}
		}
	case "setTCPRecvTimeout":
		if n, ok := c.argNumber(0); ok {
			l.tcpIdle = fmt.Sprintf("%ds", int(n))
		}
	default:
		l.notef("%s: not carried over", at)
	}
}

// method handles obj:method(args); only getPool(name):setCache(cache) has
// a dnsfront equivalent.
func (l *luaConv) method(obj, m *luaCall) {
	at := fmt.Sprintf("%s:%d: %s(...):%s", l.name, m.line, obj.fn, m.fn)
	if obj.fn != "getPool" || m.fn != "setCache" {
		l.notef("%s: not carried over", at)
		return
	}
	pool, ok := l.str(at, obj, 0)
	if !ok {
		return
	}
	var pc *luaCall
	switch a := argAt(m.args, 0).(type) {
	case *luaCall:
		pc = a
	case luaRef:
		pc, _ = l.vars[string(a)].(*luaCall)
	}
	if pc == nil || pc.fn != "newPacketCache" {
		l.notef("%s: the cache must be a newPacketCache(...) of this file; not carried over", at)
		return
	}
	l.cacheNumber++
	name := "cache"
	if l.cacheNumber > 1 {
		name = fmt.Sprintf("cache%d", l.cacheNumber)
	}
	cache := yaml.MapSlice{{Key: "name", Value: name}}
	if n, ok := pc.argNumber(0); ok {
		cache = append(cache, yaml.MapItem{Key: "size", Value: int(n)})
	}
	if t := l.table(pc, 1); t != nil {
		names := map[string]string{"maxTTL": "max_ttl", "minTTL": "min_ttl", "temporaryFailureTTL": "temporary_failure_ttl",
			"maxNegativeTTL": "max_negative_ttl", "dontAge": "dont_age", "numberOfShards": "shards"}
		for _, k := range t.keys {
			if y, ok := names[k]; ok {
				cache = append(cache, yaml.MapItem{Key: y, Value: yamlValue(t.fields[k])})
			} else {
				l.notef("%s:%d: newPacketCache: option %s: not carried over", l.name, pc.line, k)
			}
		}
	}
	l.caches = append(l.caches, cache)
	l.pools = append(l.pools, yaml.MapSlice{{Key: "name", Value: pool}, {Key: "packet_cache", Value: name}})
}

func (l *luaConv) dropDo53() {
	kept := l.binds[:0]
	for _, b := range l.binds {
		if get(b.(yaml.MapSlice), "protocol") != "Do53" {
			kept = append(kept, b)
		}
	}
	l.binds = kept
}

// listenOptions maps the options every add*Local shares.
func (l *luaConv) listenOptions(at string, b yaml.MapSlice, t *luaTable) yaml.MapSlice {
	if t == nil {
		return b
	}
	for _, k := range t.keys {
		switch k {
		case "maxConcurrentTCPConnections":
			b = append(b, yaml.MapItem{Key: "tcp", Value: yaml.MapSlice{{Key: "max_concurrent_connections", Value: yamlValue(t.fields[k])}}})
		case "reusePort":
			// dnsfront always listens with SO_REUSEPORT, one socket per event loop.
		case "provider":
			// Named by tlsLocal.
		default:
			if !tlsOption(k) && !dohOption(k) {
				l.notef("%s: option %s: not carried over", at, k)
			}
		}
	}
	return b
}

var tlsOptions = map[string]string{
	"ocspResponses": "ocsp_response_files", "minTLSVersion": "minimum_version", "ciphers": "ciphers",
	"numberOfTicketsKeys": "number_of_tickets_keys", "ticketKeyFile": "ticket_key_file",
	"ticketsKeysRotationDelay": "tickets_keys_rotation_delay", "sessionTickets": "session_tickets",
	"keyLogFile": "key_log_file",
}

var dohOptions = map[string]string{
	"idleTimeout": "idle_timeout", "sendCacheControlHeaders": "send_cache_control_headers",
	"trustForwardedForHeader": "trust_forwarded_for_header", "exactPathMatching": "exact_path_matching",
	"customResponseHeaders": "custom_response_headers",
}

func tlsOption(k string) bool { _, ok := tlsOptions[k]; return ok }
func dohOption(k string) bool { _, ok := dohOptions[k]; return ok }

// tlsLocal converts addTLSLocal(addr, certs, keys, opts) and
// addDOHLocal(addr, certs, keys, urls, opts); optsAt is the options' index.
func (l *luaConv) tlsLocal(at string, c *luaCall, proto string, optsAt int) {
	addr, ok := l.str(at, c, 0)
	if !ok {
		return
	}
	b := yaml.MapSlice{{Key: "listen_address", Value: addr}, {Key: "protocol", Value: proto}}
	certs, keys := l.list(argAt(c.args, 1)), l.list(argAt(c.args, 2))
	opts := l.table(c, optsAt)
	var tls yaml.MapSlice
	if len(certs) > 0 {
		if len(certs) != len(keys) {
			l.notef("%s: %d certificates and %d keys; pair them by hand", at, len(certs), len(keys))
		}
		var list []any
		for i, cert := range certs {
			pair := yaml.MapSlice{{Key: "certificate", Value: cert}}
			if i < len(keys) {
				pair = append(pair, yaml.MapItem{Key: "key", Value: keys[i]})
			}
			list = append(list, pair)
		}
		tls = append(tls, yaml.MapItem{Key: "certificates", Value: list})
	} else if proto == "DoT" {
		l.notef("%s: no certificate given; the bind needs tls.certificates", at)
	}
	var doh yaml.MapSlice
	if proto == "DoH" {
		if paths := l.list(argAt(c.args, 3)); len(paths) > 0 {
			doh = append(doh, yaml.MapItem{Key: "paths", Value: paths})
		}
	}
	if opts != nil {
		for _, k := range opts.keys {
			v := opts.fields[k]
			if !l.literal(at, k, v) {
				continue
			}
			switch {
			case tlsOption(k):
				if k == "ciphers" {
					l.notef("%s: option ciphers: OpenSSL names (%v) are not Go's; dnsfront's default TLS 1.2 suites are AEAD only, so the key is left out; set tls.ciphers with Go names if you need it", at, v)
					continue
				}
				if k == "ocspResponses" {
					v = l.list(v)
				}
				tls = append(tls, yaml.MapItem{Key: tlsOptions[k], Value: yamlValue(v)})
			case dohOption(k) && proto == "DoH":
				if k == "customResponseHeaders" {
					doh = append(doh, yaml.MapItem{Key: "custom_response_headers", Value: l.headers(v)})
					continue
				}
				doh = append(doh, yaml.MapItem{Key: dohOptions[k], Value: yamlValue(v)})
			case k == "provider":
				l.notef("%s: option provider: dnsfront always uses Go's crypto/tls", at)
			}
		}
	}
	b = l.listenOptions(at, b, opts)
	if len(tls) > 0 {
		b = append(b, yaml.MapItem{Key: "tls", Value: tls})
	}
	if len(doh) > 0 {
		b = append(b, yaml.MapItem{Key: "doh", Value: doh})
	}
	l.binds = append(l.binds, b)
}

// literal reports whether option k's value v is a literal, and names it
// when it is computed by Lua code (a variable, an expression).
func (l *luaConv) literal(at, k string, v luaValue) bool {
	switch v.(type) {
	case luaRef, *luaCall:
		l.notef("%s: option %s: a value computed by Lua code; not carried over", at, k)
		return false
	}
	return true
}

func (l *luaConv) headers(v luaValue) []any {
	t, ok := v.(*luaTable)
	if !ok {
		return nil
	}
	var out []any
	for _, k := range t.keys {
		out = append(out, yaml.MapSlice{{Key: "key", Value: k}, {Key: "value", Value: yamlValue(t.fields[k])}})
	}
	return out
}

var serverOptions = map[string]string{
	"address": "address", "name": "name", "weight": "weight", "order": "order", "tcpOnly": "tcp_only",
	"maxInFlight": "max_outstanding_queries",
}

var healthOptions = map[string]string{
	"checkName": "qname", "checkType": "qtype", "checkClass": "qclass", "mustResolve": "must_resolve",
	"checkInterval": "interval", "checkTimeout": "timeout", "maxCheckFailures": "max_failures", "rise": "rise",
	"checkTCP": "use_tcp", "healthCheckMode": "mode",
}

func (l *luaConv) newServer(at string, c *luaCall) {
	switch a := argAt(c.args, 0).(type) {
	case string:
		l.backends = append(l.backends, yaml.MapSlice{{Key: "address", Value: a}})
		return
	case *luaTable:
		be := yaml.MapSlice{}
		var hc yaml.MapSlice
		for _, k := range a.keys {
			v := a.fields[k]
			if !l.literal(at, k, v) {
				continue
			}
			switch {
			case serverOptions[k] != "":
				be = append(be, yaml.MapItem{Key: serverOptions[k], Value: yamlValue(v)})
			case k == "pool":
				be = append(be, yaml.MapItem{Key: "pools", Value: l.list(v)})
			case healthOptions[k] != "":
				if k == "healthCheckMode" {
					if s, _ := v.(string); strings.EqualFold(s, "lazy") {
						l.notef("%s: healthCheckMode lazy: dnsfront checks actively; mode auto used", at)
						v = "auto"
					}
				}
				hc = append(hc, yaml.MapItem{Key: healthOptions[k], Value: yamlValue(v)})
			default:
				l.notef("%s: option %s: not carried over", at, k)
			}
		}
		if len(hc) > 0 {
			be = append(be, yaml.MapItem{Key: "health_checks", Value: hc})
		}
		l.backends = append(l.backends, be)
	default:
		l.notef("%s: the server must be an address or a table of literals; not carried over", at)
	}
}

// tree assembles the converted settings in dnsfront's (dnsdist 2.x's) shape.
func (l *luaConv) tree() yaml.MapSlice {
	var t yaml.MapSlice
	if l.tcpIdle != "" {
		t = append(t, yaml.MapItem{Key: "general", Value: yaml.MapSlice{{Key: "tcp_idle_timeout", Value: l.tcpIdle}}})
	}
	if l.aclSet {
		t = append(t, yaml.MapItem{Key: "acl", Value: l.acl})
	}
	binds := l.binds
	if !l.replaceDo53 {
		// Without setLocal, dnsdist listens on 127.0.0.1:53 as well.
		binds = append([]any{yaml.MapSlice{{Key: "listen_address", Value: "127.0.0.1:53"}, {Key: "protocol", Value: "Do53"}}}, binds...)
	}
	t = append(t, yaml.MapItem{Key: "binds", Value: binds})
	if len(l.backends) > 0 {
		t = append(t, yaml.MapItem{Key: "backends", Value: l.backends})
	}
	if l.policy != "" {
		t = append(t, yaml.MapItem{Key: "load_balancing_policies", Value: yaml.MapSlice{{Key: "default_policy", Value: l.policy}}})
	}
	if len(l.pools) > 0 {
		t = append(t, yaml.MapItem{Key: "pools", Value: l.pools})
	}
	if len(l.caches) > 0 {
		t = append(t, yaml.MapItem{Key: "packet_caches", Value: l.caches})
	}
	if len(l.webserver) > 0 {
		t = append(t, yaml.MapItem{Key: "webserver", Value: l.webserver})
	}
	return t
}

// str returns argument i as a string literal, or notes why not.
func (l *luaConv) str(at string, c *luaCall, i int) (string, bool) {
	s, ok := argAt(c.args, i).(string)
	if !ok {
		l.notef("%s: argument %d must be a string literal; not carried over", at, i+1)
	}
	return s, ok
}

// strings returns argument i as a list of strings: one string or a table.
func (l *luaConv) strings(at string, c *luaCall, i int) []string {
	var out []string
	for _, v := range l.list(argAt(c.args, i)) {
		if s, ok := v.(string); ok {
			out = append(out, s)
		} else {
			l.notef("%s: a value that is not a string literal; left out", at)
		}
	}
	return out
}

func (l *luaConv) table(c *luaCall, i int) *luaTable {
	t, _ := argAt(c.args, i).(*luaTable)
	return t
}

// list turns a string or a table's array part into a list of YAML values.
func (l *luaConv) list(v luaValue) []any {
	switch v := v.(type) {
	case string:
		return []any{v}
	case *luaTable:
		out := make([]any, 0, len(v.array))
		for _, e := range v.array {
			out = append(out, yamlValue(e))
		}
		return out
	}
	return nil
}

func (c *luaCall) argNumber(i int) (float64, bool) {
	n, ok := argAt(c.args, i).(float64)
	return n, ok
}

func argAt(args []luaValue, i int) luaValue {
	if i < len(args) {
		return args[i]
	}
	return nil
}

// yamlValue renders a Lua literal for YAML: integral numbers as integers.
func yamlValue(v luaValue) any {
	switch v := v.(type) {
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
		return v
	case *luaTable:
		if len(v.keys) == 0 {
			out := make([]any, len(v.array))
			for i, e := range v.array {
				out[i] = yamlValue(e)
			}
			return out
		}
		m := yaml.MapSlice{}
		for _, k := range v.keys {
			m = append(m, yaml.MapItem{Key: k, Value: yamlValue(v.fields[k])})
		}
		return m
	case luaRef:
		return string(v)
	}
	return v
}

// The lexer and parser understand the subset of Lua that configuration
// files use for these directives: calls with literal arguments, tables,
// assignments and method calls. Anything else is skipped as a whole
// statement and named.

type luaTok struct {
	kind byte // 's' string, 'n' number, 'i' identifier or keyword, 'p' punctuation, 0 end
	text string
	num  float64
	line int
}

func lexLua(src string) ([]luaTok, error) {
	var toks []luaTok
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "--"):
			if j := longBracket(src[i+2:]); j > 0 {
				end := strings.Index(src[i+2+j:], "]"+strings.Repeat("=", j-2)+"]")
				if end < 0 {
					return nil, fmt.Errorf("line %d: unterminated comment", line)
				}
				body := src[i : i+2+j+end+j]
				line += strings.Count(body, "\n")
				i += len(body)
				continue
			}
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			j := i + 1
			var b strings.Builder
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\n' {
					return nil, fmt.Errorf("line %d: unterminated string", line)
				}
				if src[j] == '\\' && j+1 < len(src) {
					j++
					switch src[j] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(src[j])
					}
					continue
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, luaTok{kind: 's', text: b.String(), line: line})
			i = j + 1
		case c == '[' && longBracket(src[i:]) > 0:
			j := longBracket(src[i:])
			end := strings.Index(src[i+j:], "]"+strings.Repeat("=", j-2)+"]")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated long string", line)
			}
			s := strings.TrimPrefix(src[i+j:i+j+end], "\n")
			toks = append(toks, luaTok{kind: 's', text: s, line: line})
			line += strings.Count(src[i:i+j+end+j], "\n")
			i += j + end + j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
			j := i
			for j < len(src) && (isAlnum(src[j]) || src[j] == '.') {
				j++
			}
			n, err := strconv.ParseFloat(src[i:j], 64)
			if err != nil {
				if v, err2 := strconv.ParseInt(src[i:j], 0, 64); err2 == nil {
					n = float64(v)
				} else {
					return nil, fmt.Errorf("line %d: number %q", line, src[i:j])
				}
			}
			toks = append(toks, luaTok{kind: 'n', num: n, text: src[i:j], line: line})
			i = j
		case isAlnum(c):
			j := i
			for j < len(src) && isAlnum(src[j]) {
				j++
			}
			toks = append(toks, luaTok{kind: 'i', text: src[i:j], line: line})
			i = j
		default:
			p := string(c)
			for _, two := range []string{"==", "~=", "<=", ">=", "..", "::"} {
				if strings.HasPrefix(src[i:], two) {
					p = two
				}
			}
			toks = append(toks, luaTok{kind: 'p', text: p, line: line})
			i += len(p)
		}
	}
	return toks, nil
}

// longBracket returns the length of a long bracket opening ([[ or [==[) at
// the start of s, or 0.
func longBracket(s string) int {
	if len(s) < 2 || s[0] != '[' {
		return 0
	}
	j := 1
	for j < len(s) && s[j] == '=' {
		j++
	}
	if j < len(s) && s[j] == '[' {
		return j + 1
	}
	return 0
}

func isAlnum(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

type luaParser struct {
	toks []luaTok
	i    int
}

func (p *luaParser) done() bool { return p.i >= len(p.toks) }

func (p *luaParser) peek() luaTok {
	if p.done() {
		line := 0
		if len(p.toks) > 0 {
			line = p.toks[len(p.toks)-1].line
		}
		return luaTok{line: line}
	}
	return p.toks[p.i]
}

func (p *luaParser) next() luaTok { t := p.peek(); p.i++; return t }

func (p *luaParser) accept(text string) bool {
	if t := p.peek(); (t.kind == 'p' || t.kind == 'i') && t.text == text {
		p.i++
		return true
	}
	return false
}

func (p *luaParser) expect(text string) error {
	if !p.accept(text) {
		return fmt.Errorf("expected %q, found %q", text, p.peek().text)
	}
	return nil
}

var blockOpeners = map[string]bool{"function": true, "if": true, "for": true, "while": true, "do": true, "repeat": true}

// statement parses one statement: [local] name = call, call, or
// call:method(args). It returns nil for an empty statement (";").
func (p *luaParser) statement() (*statement, error) {
	if p.accept(";") {
		return nil, nil
	}
	t := p.peek()
	if t.kind == 'i' && blockOpeners[t.text] {
		return nil, fmt.Errorf("a block of Lua code (%s ... end)", t.text)
	}
	p.accept("local")
	name := p.next()
	if name.kind != 'i' {
		return nil, fmt.Errorf("unexpected %q", name.text)
	}
	if p.accept("=") {
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		c, ok := v.(*luaCall)
		if !ok {
			return nil, fmt.Errorf("%s = a value that is not a call", name.text)
		}
		return &statement{target: name.text, call: c, line: name.line}, nil
	}
	c, err := p.callAfter(name)
	if err != nil {
		return nil, err
	}
	st := &statement{call: c, line: name.line}
	if p.accept(":") {
		m := p.next()
		mc, err := p.callAfter(m)
		if err != nil {
			return nil, err
		}
		st.method = mc
	}
	return st, nil
}

// callAfter parses the arguments of a call to the name just read.
func (p *luaParser) callAfter(name luaTok) (*luaCall, error) {
	c := &luaCall{fn: name.text, line: name.line}
	// f "str" and f {table} are calls too.
	if t := p.peek(); t.kind == 's' {
		p.next()
		c.args = []luaValue{t.text}
		return c, nil
	}
	if p.peek().text == "{" {
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.args = []luaValue{v}
		return c, nil
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	for !p.accept(")") {
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, v)
		if !p.accept(",") {
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			break
		}
	}
	return c, nil
}

func (p *luaParser) expr() (luaValue, error) {
	t := p.next()
	switch t.kind {
	case 's':
		return t.text, nil
	case 'n':
		return t.num, nil
	case 'i':
		switch t.text {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "nil":
			return nil, nil
		}
		if p.peek().text == "(" || p.peek().kind == 's' || p.peek().text == "{" {
			return p.callAfter(t)
		}
		// A dotted name (DNSQType.A) is kept as a reference.
		name := t.text
		for p.accept(".") {
			name += "." + p.next().text
		}
		return luaRef(name), nil
	case 'p':
		if t.text == "{" {
			return p.table()
		}
		if t.text == "-" && p.peek().kind == 'n' {
			return -p.next().num, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q", t.text)
}

func (p *luaParser) table() (luaValue, error) {
	t := &luaTable{fields: map[string]luaValue{}}
	for !p.accept("}") {
		if p.done() {
			return nil, fmt.Errorf("unterminated table")
		}
		var key string
		switch {
		case p.peek().kind == 'i' && p.i+1 < len(p.toks) && p.toks[p.i+1].text == "=":
			key = p.next().text
			p.next()
		case p.peek().text == "[":
			p.next()
			k, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			if err := p.expect("="); err != nil {
				return nil, err
			}
			key = fmt.Sprint(yamlValue(k))
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		if key == "" {
			t.array = append(t.array, v)
		} else {
			if _, dup := t.fields[key]; !dup {
				t.keys = append(t.keys, key)
			}
			t.fields[key] = v
		}
		if !p.accept(",") && !p.accept(";") {
			if err := p.expect("}"); err != nil {
				return nil, err
			}
			break
		}
	}
	return t, nil
}

// skipStatement moves past the statement that failed to parse: to the end
// of its block when it opened one, else to the first token at bracket
// depth 0 on a later line.
func (p *luaParser) skipStatement() {
	if p.done() {
		return
	}
	start := p.peek()
	if start.kind == 'i' && blockOpeners[start.text] {
		// for and while open their block with a do of their own.
		depth, pendingDo := 0, 0
		for !p.done() {
			t := p.next()
			if t.kind != 'i' {
				continue
			}
			switch t.text {
			case "for", "while":
				depth++
				pendingDo++
			case "do":
				if pendingDo > 0 {
					pendingDo--
				} else {
					depth++
				}
			case "function", "if", "repeat":
				depth++
			case "end", "until":
				depth--
			}
			if depth == 0 {
				return
			}
		}
		return
	}
	depth := 0
	line := start.line
	for !p.done() {
		t := p.peek()
		if depth == 0 && t.line > line {
			return
		}
		p.next()
		switch t.text {
		case "(", "{", "[":
			depth++
		case ")", "}", "]":
			depth--
		}
		line = t.line
	}
}
