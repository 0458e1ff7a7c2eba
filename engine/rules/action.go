package rules

import (
	"context"
	"log/slog"
	"time"
)

// Kind is what the engine does with a query after the rules.
type Kind uint8

const (
	// KindNone: no rule decided; go on (cache, then the backend of Verdict.Pool if set).
	KindNone Kind = iota
	// KindAllow: a rule let the query through and stopped the rules; go on as for KindNone.
	KindAllow
	// KindDrop: answer nothing.
	KindDrop
	// KindRCode: answer with Verdict.RCode and no records (WriteAnswer).
	KindRCode
	// KindSpoof: answer with the records of Verdict.Answer (WriteAnswer).
	KindSpoof
	// KindTruncate: answer with TC=1 and no records, so the client retries over TCP (UDP only).
	KindTruncate
	// KindHTTPStatus: DoH only; answer with Verdict.HTTP instead of a DNS message.
	KindHTTPStatus
)

var kindNames = [...]string{"None", "Allow", "Drop", "RCode", "Spoof", "Truncate", "HTTPStatus"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Answers returns whether the engine must write an answer itself (WriteAnswer) instead of
// forwarding or dropping.
func (k Kind) Answers() bool { return k == KindRCode || k == KindSpoof || k == KindTruncate }

// Verdict is the outcome of the rules for one query (or response): the terminal action and
// the settings that non-terminal actions gathered on the way. It holds pointers into the
// rule set and no allocation of its own.
type Verdict struct {
	Kind Kind
	// RCode for KindRCode; may be an extended RCODE (above 15) for ERCode actions.
	RCode uint16
	// Answer is the self-generated answer's records and header bits (Spoof, SpoofCNAME,
	// SpoofRaw, NegativeAndSOA, and RCode's vars).
	Answer *Answer
	// HTTP is the DoH answer for KindHTTPStatus.
	HTTP *HTTPAnswer
	// Pool routes the query to a pool ("" : the bind's pool).
	Pool string
	// Delay asks the engine to hold a UDP answer this long on a loop timer (never a sleep).
	Delay time.Duration
	// NoRecurse: clear RD before forwarding. SkipCache: neither read nor write the cache.
	NoRecurse bool
	SkipCache bool
	// MaxReturnedTTL caps the TTLs of the answer sent to the client when HasMaxReturnedTTL.
	MaxReturnedTTL    uint32
	HasMaxReturnedTTL bool
	// TempFailureCacheTTL is the cache TTL of a SERVFAIL/REFUSED answer when HasTempFailureTTL.
	TempFailureCacheTTL uint32
	HasTempFailureTTL   bool
	// EDE is an Extended DNS Error (RFC 8914) to add to the answer.
	EDE *EDE
	// Dnstap names the DnstapLog actions that ran (dnstap.go).
	Dnstap DnstapMark
	// ECS is what the EDNS Client Subnet actions decided (ecs.go).
	ECS ECSPolicy
	// Rule is the index of the rule that set Kind, -1 when none did; RuleName its name.
	Rule     int
	RuleName string
}

// EDE is an Extended DNS Error option.
type EDE struct {
	InfoCode  uint16
	ExtraText string
	// ClearExisting removes the EDE options a backend put in the answer (dnsdist's default).
	ClearExisting bool
}

// HTTPAnswer is a DoH response made by an HTTPStatus action.
type HTTPAnswer struct {
	Status      int
	Body        []byte
	ContentType string
}

// action is one compiled action. apply updates the verdict and reports whether it ends the
// evaluation.
type action interface {
	apply(rs *RuleSet, r *rule, q *Query, v *Verdict) bool
}

type allowAct struct{}

func (allowAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.Kind = KindAllow
	return true
}

type dropAct struct{}

func (dropAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.Kind = KindDrop
	return true
}

type noneAct struct{}

func (noneAct) apply(*RuleSet, *rule, *Query, *Verdict) bool { return false }

// continueAct runs an action and goes on with the next rule whatever it decided, keeping
// the settings it made (dnsdist's ContinueAction).
type continueAct struct{ a action }

func (c continueAct) apply(rs *RuleSet, r *rule, q *Query, v *Verdict) bool {
	kind, rule, name := v.Kind, v.Rule, v.RuleName
	c.a.apply(rs, r, q, v)
	v.Kind, v.Rule, v.RuleName = kind, rule, name
	return false
}

type rcodeAct struct {
	rcode uint16
	ans   *Answer
}

func (a rcodeAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.Kind, v.RCode, v.Answer = KindRCode, a.rcode, a.ans
	return true
}

type spoofAct struct{ ans *Answer }

// apply answers only when the answer has records for the query's type; otherwise, like
// dnsdist's Spoof with addresses of the other family, it lets the next rules run.
func (a spoofAct) apply(_ *RuleSet, _ *rule, q *Query, v *Verdict) bool {
	if !a.ans.answers(q.QType) {
		return false
	}
	v.Kind, v.Answer = KindSpoof, a.ans
	return true
}

// tcAct truncates UDP queries; on streams it does nothing.
type tcAct struct{}

func (tcAct) apply(_ *RuleSet, _ *rule, q *Query, v *Verdict) bool {
	if q.Proto != DoUDP {
		return false
	}
	v.Kind = KindTruncate
	return true
}

// httpStatusAct answers DoH queries; other protocols go on.
type httpStatusAct struct{ h *HTTPAnswer }

func (a httpStatusAct) apply(_ *RuleSet, _ *rule, q *Query, v *Verdict) bool {
	if q.Proto != DoH && q.Proto != DoH3 {
		return false
	}
	v.Kind, v.HTTP = KindHTTPStatus, a.h
	return true
}

type poolAct struct {
	pool string
	stop bool
}

func (a poolAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.Pool = a.pool
	if a.stop {
		v.Kind = KindAllow
	}
	return a.stop
}

// qpsAct drops queries above the limit and lets the others continue (dnsdist's QPSAction).
type qpsAct struct{ l *Limiter }

func (a qpsAct) apply(_ *RuleSet, _ *rule, q *Query, v *Verdict) bool {
	if a.l.Allow(q.Now) {
		return false
	}
	v.Kind = KindDrop
	return true
}

// qpsPoolAct sends queries within the limit to a pool; the others continue.
type qpsPoolAct struct {
	l    *Limiter
	pool poolAct
}

func (a qpsPoolAct) apply(rs *RuleSet, r *rule, q *Query, v *Verdict) bool {
	if !a.l.Allow(q.Now) {
		return false
	}
	return a.pool.apply(rs, r, q, v)
}

type setTagAct struct{ tag, value string }

func (a setTagAct) apply(_ *RuleSet, _ *rule, q *Query, _ *Verdict) bool {
	q.Tags.Set(a.tag, a.value)
	return false
}

type unsetTagAct struct{ tag string }

func (a unsetTagAct) apply(_ *RuleSet, _ *rule, q *Query, _ *Verdict) bool {
	q.Tags.Unset(a.tag)
	return false
}

type noRecurseAct struct{}

func (noRecurseAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.NoRecurse = true
	return false
}

type skipCacheAct struct{}

func (skipCacheAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.SkipCache = true
	return false
}

type maxReturnedTTLAct uint32

func (a maxReturnedTTLAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.MaxReturnedTTL, v.HasMaxReturnedTTL = uint32(a), true
	return false
}

type tempFailureTTLAct uint32

func (a tempFailureTTLAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.TempFailureCacheTTL, v.HasTempFailureTTL = uint32(a), true
	return false
}

type edeAct struct{ e *EDE }

func (a edeAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.EDE = a.e
	return false
}

type delayAct time.Duration

func (a delayAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.Delay = time.Duration(a)
	return false
}

// logAct writes one structured line per matching query, at most logRate lines a second per
// rule so that a flood cannot turn the log into the bottleneck.
type logAct struct {
	level slog.Level
	lim   *Limiter
}

// logRate and logBurst bound each Log action: enough to see what a rule catches, too few
// for a flood to cost more than the queries themselves.
const (
	logRate  = 10
	logBurst = 20
)

func (a logAct) apply(rs *RuleSet, r *rule, q *Query, v *Verdict) bool {
	if rs.log == nil || !rs.log.Enabled(context.Background(), a.level) || !a.lim.Allow(q.Now) {
		return false
	}
	kind := "query"
	if q.Resp != nil {
		kind = "response"
	}
	rs.log.LogAttrs(context.Background(), a.level, "rules: "+kind+" matched",
		slog.String("rule", r.name),
		slog.String("peer", q.Client.String()),
		slog.String("qname", NameString(q.QName)),
		slog.Int("qtype", int(q.QType)),
		slog.String("protocol", q.Proto.String()))
	return false
}

// ttlAct clamps the response's TTLs in place (SetMaxTTL, SetMinTTL, LimitTTL).
type ttlAct struct {
	min, max uint32
	types    []uint16
}

func (a ttlAct) apply(_ *RuleSet, _ *rule, q *Query, _ *Verdict) bool {
	if q.Resp != nil {
		LimitTTLs(q.Resp, a.min, a.max, a.types)
	}
	return false
}
