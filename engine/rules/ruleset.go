package rules

import (
	"log/slog"
	"math/bits"
	"sync/atomic"
)

// RuleSet is a compiled, immutable set of query and response rules. The engine holds the
// current one behind an atomic pointer that a reload swaps; loops read it without locks.
// Its only mutable parts are rate limiters and hit counters, which are safe for concurrent use.
type RuleSet struct {
	query, response, cacheHit, selfAnswered ruleList

	// names indexes every QName, QNameSet and QNameSuffix selector of the set: entry.val
	// points into nameIDs, the selectors a name satisfies.
	names    *nameTable
	nameIDs  []nameIDs
	selWords int // words of Query.selBits in use

	log   *slog.Logger
	loops int
	clock Clock

	dnstap *DnstapTargets // DnstapLog actions (dnstap.go); nil: none
}

type nameIDs struct{ suffix, exact []uint16 }

// maxIndexedWords bounds the name selectors the index marks (64 per word); further name
// selectors look their own tables up. It also bounds the rules a list prefilters.
const maxIndexedWords = 16

// rule is one compiled rule.
type rule struct {
	name string
	sel  selector
	act  action
	hits []hitCounter // one per loop
}

// hitCounter fills a cache line, so that loops counting hits of the same rule do not
// bounce a shared line between cores.
type hitCounter struct {
	atomic.Uint64
	_ [56]byte
}

// ruleList is one list of rules (query_rules, response_rules, ...) with its prefilter: a
// rule whose selector requires a name selector or a query type can only match queries for
// which that holds, so the list keeps, per name selector and per query type, the rules
// that need it, and always-candidates for the rest. Evaluation visits only candidates, in
// rule order, so that the cost grows with the rules that may match, not with all rules.
type ruleList struct {
	rules   []rule
	words   int
	always  [maxIndexedWords]uint64
	bySel   [][maxIndexedWords]uint64 // by name-selector id
	byQType map[uint16]*[maxIndexedWords]uint64
	qtype   [256]*[maxIndexedWords]uint64
}

// EvalQuery runs the query rules on q and returns the verdict. SetTag and UnsetTag update
// q.Tags. It runs on the event loop that owns q and does not allocate (Log actions excepted,
// when they log).
func (rs *RuleSet) EvalQuery(q *Query) Verdict {
	return rs.eval(&rs.query, q, Verdict{Rule: -1})
}

// EvalQueryWith runs the query rules starting from the settings already in *v (those of a
// NoRecurse or SetTag dynamic block) and stores the outcome in *v.
func (rs *RuleSet) EvalQueryWith(q *Query, v *Verdict) {
	*v = rs.eval(&rs.query, q, *v)
}

// Decide is the engine's whole query decision after the ACL: the dynamic blocks, then the
// query rules. Either may be nil.
func Decide(d *DynBlocks, rs *RuleSet, q *Query) Verdict {
	v := Verdict{Rule: -1}
	if d != nil && d.Check(q, &v) {
		return v
	}
	if rs != nil {
		rs.EvalQueryWith(q, &v)
	}
	return v
}

// EvalResponse runs the response rules (response_rules) on q, whose Resp holds the response.
// Actions may rewrite the TTLs of q.Resp in place (SetMaxTTL, SetMinTTL, LimitTTL).
func (rs *RuleSet) EvalResponse(q *Query) Verdict { return rs.eval(&rs.response, q, Verdict{Rule: -1}) }

// EvalCacheHit runs cache_hit_response_rules on an answer taken from the packet cache.
func (rs *RuleSet) EvalCacheHit(q *Query) Verdict { return rs.eval(&rs.cacheHit, q, Verdict{Rule: -1}) }

// EvalSelfAnswered runs self_answered_response_rules on an answer the rules generated.
func (rs *RuleSet) EvalSelfAnswered(q *Query) Verdict {
	return rs.eval(&rs.selfAnswered, q, Verdict{Rule: -1})
}

// HasResponseRules reports whether EvalResponse has anything to do, so that the engine can
// skip filling a Query for responses.
func (rs *RuleSet) HasResponseRules() bool { return len(rs.response.rules) > 0 }

// HasCacheHitRules and HasSelfAnsweredRules are HasResponseRules for the other lists.
func (rs *RuleSet) HasCacheHitRules() bool     { return len(rs.cacheHit.rules) > 0 }
func (rs *RuleSet) HasSelfAnsweredRules() bool { return len(rs.selfAnswered.rules) > 0 }

func (rs *RuleSet) eval(l *ruleList, q *Query, init Verdict) Verdict {
	if len(l.rules) == 0 {
		return init
	}
	// The verdict lives in q, which the engine owns: a local one would escape through
	// the action interface and cost an allocation per query.
	v := &q.verdict
	*v = init
	if q.Now == 0 {
		q.Now = rs.clock.Nanos()
	}
	q.textLen = 0
	rs.markNames(q)
	cand := l.always
	for w := 0; w < rs.selWords; w++ {
		for b := q.selBits[w]; b != 0; b &= b - 1 {
			id := w<<6 | bits.TrailingZeros64(b)
			if id < len(l.bySel) {
				m := &l.bySel[id]
				for i := 0; i < l.words; i++ {
					cand[i] |= m[i]
				}
			}
		}
	}
	var m *[maxIndexedWords]uint64
	if q.QType < 256 {
		m = l.qtype[q.QType]
	} else if l.byQType != nil {
		m = l.byQType[q.QType]
	}
	if m != nil {
		for i := 0; i < l.words; i++ {
			cand[i] |= m[i]
		}
	}
	loop := q.Loop
	if loop < 0 || loop >= rs.loops {
		loop = 0
	}
	for w := 0; w < l.words; w++ {
		for b := cand[w]; b != 0; b &= b - 1 {
			if rs.run(l, w<<6|bits.TrailingZeros64(b), q, v, loop) {
				return *v
			}
		}
	}
	for i := l.words * 64; i < len(l.rules); i++ {
		if rs.run(l, i, q, v, loop) {
			return *v
		}
	}
	return *v
}

// run evaluates rule i and reports whether its action ended the evaluation.
func (rs *RuleSet) run(l *ruleList, i int, q *Query, v *Verdict, loop int) bool {
	r := &l.rules[i]
	if !r.sel.match(q) {
		return false
	}
	r.hits[loop].Add(1)
	kind := v.Kind
	if !r.act.apply(rs, r, q, v) {
		return false
	}
	if v.Kind != kind || v.Rule < 0 {
		v.Rule, v.RuleName = i, r.name
	}
	return true
}

// markNames sets q.selBits for every name selector the query name satisfies.
func (rs *RuleSet) markNames(q *Query) {
	for w := 0; w < rs.selWords; w++ {
		q.selBits[w] = 0
	}
	if rs.names == nil || len(rs.names.entries) == 0 {
		return
	}
	rs.names.suffixes(q.QName, func(e int, exact bool) bool {
		ids := &rs.nameIDs[rs.names.entries[e].val]
		for _, id := range ids.suffix {
			q.selBits[id>>6] |= 1 << (id & 63)
		}
		if exact {
			for _, id := range ids.exact {
				q.selBits[id>>6] |= 1 << (id & 63)
			}
		}
		return true
	})
}

// RuleStats is one rule's name and how many queries it matched.
type RuleStats struct {
	List string // query, response, cache_hit, self_answered
	Name string
	Hits uint64
}

// Stats returns every rule's match count.
func (rs *RuleSet) Stats() []RuleStats {
	var out []RuleStats
	for _, l := range []struct {
		name string
		l    *ruleList
	}{{"query", &rs.query}, {"response", &rs.response}, {"cache_hit", &rs.cacheHit}, {"self_answered", &rs.selfAnswered}} {
		for i := range l.l.rules {
			r := &l.l.rules[i]
			var n uint64
			for j := range r.hits {
				n += r.hits[j].Load()
			}
			out = append(out, RuleStats{List: l.name, Name: r.name, Hits: n})
		}
	}
	return out
}
