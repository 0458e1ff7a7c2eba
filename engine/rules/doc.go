// Package rules is dnsfront's traffic policy: dnsdist's query and response rules, rate
// limits and dynamic blocks, compiled from the configuration's query_rules, response_rules,
// cache_hit_response_rules, self_answered_response_rules and dynamic_rules.
//
// Concurrency rule: a RuleSet is compiled once per (re)load and never changes; the engine
// publishes it through an atomic pointer and every loop reads it without locks. The only
// shared mutable state a query touches is counters built for it: rate limiters (one atomic
// word per process-wide limit, sharded mutex-protected maps per client), per-loop padded hit
// counters, and the dynamic-block windows, one per loop, that only their loop writes and
// that the evaluator swaps once a second. DynBlocks publishes its BlockSet, also immutable,
// through an atomic pointer. Nothing on the query path sleeps or allocates: the Delay action
// returns a duration for the engine's loop timer.
//
// The engine's order, as dnsdist's: ACL, DynBlocks.Check, RuleSet.EvalQuery, packet cache
// (EvalCacheHit on a hit), backend, EvalResponse; self-generated answers go through
// EvalSelfAnswered. WriteAnswer builds the answers of RCode, Spoof and Truncate verdicts.
package rules
