package rules

import (
	"fmt"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/dnstap"
)

// DnstapTarget is where one DnstapLog action sends its messages: a logger, named in the
// configuration, and the identity written into them.
type DnstapTarget struct {
	LoggerName string
	Identity   string
	// Logger is set by the server (ResolveDnstap) before the rule set is published;
	// a nil Logger logs nothing.
	Logger *dnstap.Logger
}

// DnstapTargets are a rule set's DnstapLog actions, one bit each in a DnstapMark. They
// are immutable once the rule set is published.
type DnstapTargets struct {
	list []DnstapTarget
}

// maxDnstapActions is the number of DnstapLog actions a rule set may hold: one bit each
// in a DnstapMark.
const maxDnstapActions = 64

// DnstapMark is what the DnstapLog actions that ran for a query (or its response) ask
// for: the targets of bits set in Bits, among Targets'.
type DnstapMark struct {
	Targets *DnstapTargets
	Bits    uint64
}

// At returns the target of bit i.
func (t *DnstapTargets) At(i int) *DnstapTarget { return &t.list[i] }

// Dnstap returns the rule set's DnstapLog targets, nil when it has none: the engine
// does nothing for dnstap on such a rule set.
func (rs *RuleSet) Dnstap() *DnstapTargets {
	if rs == nil {
		return nil
	}
	return rs.dnstap // made with the first DnstapLog action
}

// ResolveDnstap gives each DnstapLog action its logger, by name. It is called before the
// rule set is published; a name without a logger is an error (config validation reports
// it with its line first).
func (rs *RuleSet) ResolveDnstap(byName func(name string) *dnstap.Logger) error {
	if rs == nil || rs.dnstap == nil {
		return nil
	}
	for i := range rs.dnstap.list {
		t := &rs.dnstap.list[i]
		if t.Logger = byName(t.LoggerName); t.Logger == nil {
			return fmt.Errorf("no dnstap logger is named %q", t.LoggerName)
		}
	}
	return nil
}

// dnstapAct marks the query or response for its target; the engine sends the message
// (the query when the query rules are done, the response when it is delivered).
type dnstapAct struct {
	targets *DnstapTargets
	bit     uint64
}

func (a dnstapAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	if v.Dnstap.Targets != a.targets {
		v.Dnstap = DnstapMark{Targets: a.targets}
	}
	v.Dnstap.Bits |= a.bit
	return false
}

// dnstapAction compiles a DnstapLog action.
func (b *builder) dnstapAction(p string, x *config.DnstapLogAction) (action, error) {
	if b.rs.dnstap == nil {
		b.rs.dnstap = &DnstapTargets{}
	}
	t := b.rs.dnstap
	if len(t.list) == maxDnstapActions {
		return nil, fmt.Errorf("%s: at most %d DnstapLog actions are supported", p, maxDnstapActions)
	}
	t.list = append(t.list, DnstapTarget{LoggerName: x.LoggerName, Identity: x.Identity})
	return dnstapAct{targets: t, bit: 1 << (len(t.list) - 1)}, nil
}
