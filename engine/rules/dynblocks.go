package rules

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnsfront/dnsfront/config"
)

// DynBlocks turns traffic into dynamic blocks (dnsdist's dynamic rules). Loops count
// queries and responses per client network into their own window (CountQuery,
// CountResponse); once a second the evaluator (Run, or Evaluate in tests) takes every
// loop's window, sums the windows of the last seconds, compares them with the rules'
// thresholds, and publishes a new BlockSet through an atomic pointer that loops read
// without locks (Check). It lives as long as the process: a reload reconfigures it and
// the blocks in force stay.
type DynBlocks struct {
	clock   Clock
	log     *slog.Logger
	onBlock func(BlockInfo)
	cfg     atomic.Pointer[dynConfig]
	set     blockSetPtr
	loops   []loopCounters

	mu       sync.Mutex // the evaluator's state and the API
	blocks   map[string]*Block
	history  []snapshot // ring, newest at head
	head     int
	filled   int
	sums     map[int]*windowSum // by window length in seconds
	lastEval int64
	stats    dynStats
}

// DynOptions configure a DynBlocks.
type DynOptions struct {
	Loops  int
	Clock  Clock        // nil: the system clock
	Logger *slog.Logger // nil: slog.Default()
	// OnBlock, when set, is told of every block the rules raise or extend (not those added
	// with Add), e.g. to share it with a fleet, which then calls Add on the other members.
	// It runs on the evaluator's goroutine and must not block.
	OnBlock func(BlockInfo)
}

type dynConfig struct {
	groups        []dynGroup
	bits4, bits6  int // the finest masks: what loops count by
	qtypes        []uint16
	suffixRules   []suffixRule
	needResponses bool
	maxSeconds    int
	windows       []int
}

type dynGroup struct {
	name           string
	bits4, bits6   int
	ranges         rangeList
	excludeDomains *SuffixSet
	rules          []dynRule
}

type dynRule struct {
	typ             string
	seconds         int
	duration        time.Duration
	comment         string
	rate, warnRate  uint64 // per second
	ratio, warnRat  float64
	action          BlockAction
	tagName, tagVal string
	rcode           int
	allowed         [16]bool
	qtypeSlot       int
	minResponses    uint32
	minGlobalHit    float64
	suffix          int // index in dynConfig.suffixRules
}

type suffixRule struct {
	group, rule int
	labels      int
	rcode       int // -1: every response
}

// NewDynBlocks returns a DynBlocks with no rules; Reconfigure gives it rules.
func NewDynBlocks(o DynOptions) *DynBlocks {
	d := &DynBlocks{clock: o.Clock, log: o.Logger, onBlock: o.OnBlock, blocks: map[string]*Block{}, sums: map[int]*windowSum{}}
	if d.clock == nil {
		d.clock = NewSystemClock()
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.loops = make([]loopCounters, max(o.Loops, 1))
	for i := range d.loops {
		d.loops[i].cur, d.loops[i].spare = newWindow(), newWindow()
	}
	d.set.Store(newBlockSet(nil))
	d.stats.init()
	return d
}

// DynConfig is a compiled set of dynamic rules, ready to Install.
type DynConfig struct{ c *dynConfig }

// CompileDynamic compiles the dynamic rules of a configuration without touching any
// DynBlocks: the prepare phase of a reload, which may fail.
func CompileDynamic(r *config.Rules) (DynConfig, error) {
	c, err := compileDyn(r)
	return DynConfig{c}, err
}

// Reconfigure compiles and installs the dynamic rules of a configuration.
func (d *DynBlocks) Reconfigure(r *config.Rules) error {
	c, err := CompileDynamic(r)
	if err != nil {
		return err
	}
	d.Install(c)
	return nil
}

// Install puts compiled dynamic rules in force (the commit phase of a reload: it cannot
// fail). Blocks in force are kept; the counting history restarts when the way of counting
// changed (masks or watched types).
func (d *DynBlocks) Install(dc DynConfig) {
	c := dc.c
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.cfg.Load(); old == nil || c == nil || old.bits4 != c.bits4 || old.bits6 != c.bits6 || !slices.Equal(old.qtypes, c.qtypes) || len(old.suffixRules) != len(c.suffixRules) {
		d.history, d.head, d.filled = nil, 0, 0
		d.sums = map[int]*windowSum{}
	}
	d.cfg.Store(c)
}

func compileDyn(r *config.Rules) (*dynConfig, error) {
	c := &dynConfig{bits4: -1, bits6: -1}
	def := BlockDrop
	if a := r.DynamicRulesSettings.DefaultAction; a != "" {
		var ok bool
		if def, ok = ParseBlockAction(a); !ok {
			return nil, fmt.Errorf("dynamic_rules_settings.default_action: unknown action %q", a)
		}
	}
	for gi, gc := range r.DynamicRules {
		p := fmt.Sprintf("dynamic_rules[%d]", gi)
		g := dynGroup{name: gc.Name, bits4: 32, bits6: 64}
		if g.name == "" {
			g.name = p
		}
		if gc.MaskIPv4 != nil {
			g.bits4 = *gc.MaskIPv4
		}
		if gc.MaskIPv6 != nil {
			g.bits6 = *gc.MaskIPv6
		}
		c.bits4, c.bits6 = max(c.bits4, g.bits4), max(c.bits6, g.bits6)
		if len(gc.ExcludeRanges)+len(gc.IncludeRanges) > 0 {
			// Ranges can be narrower than the group's mask, so loops count full addresses
			// and the evaluator leaves excluded ones out before aggregating.
			c.bits4, c.bits6 = 32, 128
		}
		for _, l := range []struct {
			list    []string
			include bool
		}{{gc.ExcludeRanges, false}, {gc.IncludeRanges, true}} {
			for i, s := range l.list {
				pfx, err := config.ParsePrefix(s)
				if err != nil {
					return nil, fmt.Errorf("%s ranges[%d]: %v", p, i, err)
				}
				g.ranges.add(pfx, l.include)
			}
		}
		if len(gc.ExcludeDomains) > 0 {
			s, err := NewSuffixSet(gc.ExcludeDomains)
			if err != nil {
				return nil, fmt.Errorf("%s.exclude_domains: %v", p, err)
			}
			g.excludeDomains = s
		}
		for ri, rc := range gc.Rules {
			rp := fmt.Sprintf("%s.rules[%d]", p, ri)
			dr := dynRule{typ: rc.Type, seconds: max(rc.Seconds, 1), duration: time.Duration(rc.ActionDuration) * time.Second,
				comment: rc.Comment, rate: uint64(rc.Rate), warnRate: uint64(rc.WarningRate), ratio: rc.Ratio, warnRat: rc.WarningRatio,
				action: def, tagName: rc.TagName, tagVal: rc.TagValue, rcode: -1, qtypeSlot: -1,
				minResponses: uint32(rc.MinimumNumberOfResponses), minGlobalHit: rc.MinimumGlobalCacheHitRatio, suffix: -1}
			if rc.Action != "" {
				a, ok := ParseBlockAction(rc.Action)
				if !ok {
					return nil, fmt.Errorf("%s.action: unknown action %q", rp, rc.Action)
				}
				dr.action = a
			}
			if dr.comment == "" {
				dr.comment = rc.Type
			}
			if rc.RCode != "" {
				rcode, err := config.ParseRCode(rc.RCode)
				if err != nil || rcode > 15 {
					return nil, fmt.Errorf("%s.rcode: %q is not a header rcode", rp, rc.RCode)
				}
				dr.rcode = rcode
			}
			for _, s := range rc.AllowedRCodes {
				rcode, err := config.ParseRCode(s)
				if err != nil || rcode > 15 {
					return nil, fmt.Errorf("%s.allowed_rcodes: %q is not a header rcode", rp, s)
				}
				dr.allowed[rcode] = true
			}
			if rc.Type == "allowed-rcodes-ratio" && len(rc.AllowedRCodes) == 0 {
				dr.allowed[0] = true // dnsdist's default: NoError
			}
			switch rc.Type {
			case "qtype-rate":
				t, err := config.ParseQType(rc.QType, 0)
				if err != nil {
					return nil, fmt.Errorf("%s.qtype: %v", rp, err)
				}
				dr.qtypeSlot = slices.Index(c.qtypes, t)
				if dr.qtypeSlot < 0 {
					if len(c.qtypes) == maxDynQTypes {
						return nil, fmt.Errorf("%s.qtype: at most %d query types can be watched", rp, maxDynQTypes)
					}
					c.qtypes = append(c.qtypes, t)
					dr.qtypeSlot = len(c.qtypes) - 1
				}
			case "suffix-match":
				dr.suffix = len(c.suffixRules)
				c.suffixRules = append(c.suffixRules, suffixRule{group: gi, rule: ri, labels: rc.SuffixLabels, rcode: dr.rcode})
				c.needResponses = true
			case "rcode-rate", "rcode-ratio", "response-byte-rate", "cache-miss-ratio", "allowed-rcodes-ratio":
				c.needResponses = true
			}
			c.maxSeconds = max(c.maxSeconds, dr.seconds)
			if !slices.Contains(c.windows, dr.seconds) {
				c.windows = append(c.windows, dr.seconds)
			}
			g.rules = append(g.rules, dr)
		}
		c.groups = append(c.groups, g)
	}
	if len(c.groups) == 0 {
		return nil, nil
	}
	return c, nil
}

// Active reports whether there are dynamic rules, so that the engine can skip counting.
func (d *DynBlocks) Active() bool { return d.cfg.Load() != nil }

// Check applies the block that catches q, if any, to v and reports whether the verdict is
// final (Drop, Refused, NXDomain, and Truncate over UDP). NoRecurse and SetTag blocks
// change v or q.Tags and return false: the rules still run. It runs on the loop and does
// not allocate; with no blocks it costs one atomic load.
func (d *DynBlocks) Check(q *Query, v *Verdict) bool {
	s := d.set.Load()
	if s.n == 0 {
		return false
	}
	// Expiry is judged on the evaluator's clock, read only for a client that has a block.
	b := s.Lookup(q, d.clock)
	if b == nil {
		return false
	}
	return b.apply(q, v)
}

// Blocks returns the published block set.
func (d *DynBlocks) Blocks() *BlockSet { return d.set.Load() }

// CountQuery counts a query from q.Client (and its type) on loop q.Loop.
func (d *DynBlocks) CountQuery(q *Query) {
	c := d.cfg.Load()
	if c == nil {
		return
	}
	lc := &d.loops[loopIndex(q.Loop, len(d.loops))]
	k := maskedKey(q.Client, c.bits4, c.bits6)
	lc.mu.Lock()
	if cc := lc.cur.client(k); cc != nil {
		cc.queries++
		for i, t := range c.qtypes {
			if t == q.QType {
				cc.qtypes[i]++
			}
		}
	}
	lc.mu.Unlock()
}

// CountResponse counts an answer sent to q.Client: its rcode, its size in bytes, and
// whether it came from the packet cache (cacheHit) or a backend. Self-generated answers
// count with cacheHit true, since they cost no backend work.
func (d *DynBlocks) CountResponse(q *Query, rcode int, size int, cacheHit bool) {
	c := d.cfg.Load()
	if c == nil || !c.needResponses {
		return
	}
	lc := &d.loops[loopIndex(q.Loop, len(d.loops))]
	k := maskedKey(q.Client, c.bits4, c.bits6)
	lc.mu.Lock()
	if cc := lc.cur.client(k); cc != nil {
		cc.responses++
		cc.bytes += uint64(size)
		cc.rcodes[rcode&0xf]++
		if cacheHit {
			cc.cacheHits++
		} else {
			cc.cacheMisses++
		}
	}
	for i := range c.suffixRules {
		sr := &c.suffixRules[i]
		if sr.rcode >= 0 && sr.rcode != rcode {
			continue
		}
		if name := suffixOf(q.QName, sr.labels); name != nil {
			lc.cur.suffix(i, name, hashWireFold(name))
		}
	}
	lc.mu.Unlock()
}

func loopIndex(i, n int) int {
	if i < 0 || i >= n {
		return 0
	}
	return i
}

// suffixOf returns the rightmost labels of a wire name (labels 0: the name without its first
// label), or nil when the name has no such suffix below the root.
func suffixOf(name []byte, labels int) []byte {
	n := labelCount(name)
	skip := n - labels
	if labels == 0 {
		skip = 1
	}
	if skip < 1 || n-skip < 1 {
		return nil
	}
	off := 0
	for i := 0; i < skip; i++ {
		off += 1 + int(name[off])
	}
	return name[off:]
}

func hashWireFold(name []byte) uint64 {
	h := uint64(hashSeed)
	for i := len(name) - 1; i >= 0; i-- {
		h = (h ^ uint64(lower(name[i]))) * hashPrime
	}
	return h
}

// Run evaluates once a second until ctx ends. It runs on its own goroutine, never on a loop.
func (d *DynBlocks) Run(ctx context.Context) {
	// Once a second, as dnsdist's maintenance thread: the rules' thresholds are rates
	// per second over whole seconds, and a block takes at most a second to start.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.Evaluate()
		}
	}
}

// BlockInfo describes a block for the admin API and `dnsfront blocks`.
type BlockInfo struct {
	Key       string        `json:"key"`
	Network   string        `json:"network,omitempty"`
	Suffix    string        `json:"suffix,omitempty"`
	Action    string        `json:"action"`
	Reason    string        `json:"reason"`
	Group     string        `json:"group"`
	Rule      string        `json:"rule"`
	Warning   bool          `json:"warning"`
	Remaining time.Duration `json:"remaining_ns"`
	Until     time.Time     `json:"until"`
	Hits      uint64        `json:"hits"`
	TagName   string        `json:"tag_name,omitempty"`
	TagValue  string        `json:"tag_value,omitempty"`
}

// List returns the blocks in force (warnings included), sorted by key.
func (d *DynBlocks) List() []BlockInfo {
	now := d.clock.Nanos()
	wall := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]BlockInfo, 0, len(d.blocks))
	for _, b := range d.blocks {
		if b.Until <= now {
			continue
		}
		out = append(out, b.info(now, wall))
	}
	slices.SortFunc(out, func(a, b BlockInfo) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return out
}

// BlockRequest is a block added by hand (admin API), or restored after a restart.
type BlockRequest struct {
	Network  string        `json:"network,omitempty"` // an address or a prefix
	Suffix   string        `json:"suffix,omitempty"`  // or a domain
	Action   string        `json:"action"`            // Drop (default), Refused, NXDomain, Truncate, NoRecurse, SetTag, NoOp
	Duration time.Duration `json:"duration_ns"`
	Reason   string        `json:"reason"`
	TagName  string        `json:"tag_name,omitempty"`
	TagValue string        `json:"tag_value,omitempty"`
}

// Add inserts or replaces a block and publishes the set.
func (d *DynBlocks) Add(r BlockRequest) error {
	b := &Block{Reason: r.Reason, Group: "api", Rule: "api", TagName: r.TagName, TagValue: r.TagValue, hits: make([]hitCounter, len(d.loops))}
	switch {
	case r.Network != "" && r.Suffix != "":
		return fmt.Errorf("rules: a block is for a network or a suffix, not both")
	case r.Network != "":
		p, err := config.ParsePrefix(r.Network)
		if err != nil {
			return fmt.Errorf("rules: %v", err)
		}
		b.Prefix = p
	case r.Suffix != "":
		n, err := config.ParseDNSName(r.Suffix)
		if err != nil {
			return fmt.Errorf("rules: %v", err)
		}
		b.Suffix = n
	default:
		return fmt.Errorf("rules: a block needs a network or a suffix")
	}
	if r.Duration <= 0 {
		return fmt.Errorf("rules: a block needs a positive duration")
	}
	b.Action = BlockDrop
	if r.Action != "" {
		a, ok := ParseBlockAction(r.Action)
		if !ok {
			return fmt.Errorf("rules: unknown block action %q", r.Action)
		}
		b.Action = a
	}
	if b.Action == BlockSetTag && b.TagName == "" {
		return fmt.Errorf("rules: a SetTag block needs a tag name")
	}
	now := d.clock.Nanos()
	b.Since, b.Until = now, now+int64(r.Duration)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.blocks[b.key()] = b
	d.stats.inserted(b)
	d.logBlock("dynamic block added", b, now)
	d.publish()
	return nil
}

// Remove lifts the block with the given key (a network as listed, or "suffix:<name>") and
// reports whether there was one.
func (d *DynBlocks) Remove(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, err := netip.ParsePrefix(key); err == nil {
		key = p.Masked().String()
	} else if a, err := netip.ParseAddr(key); err == nil {
		key = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()).String()
	}
	b, ok := d.blocks[key]
	if !ok {
		return false
	}
	delete(d.blocks, key)
	d.stats.removed(b)
	d.log.Info("dynamic block removed", slog.String("block", key), slog.String("group", b.Group), slog.String("rule", b.Rule))
	d.publish()
	return true
}

// Export returns the blocks in force as requests, to carry them into another process.
func (d *DynBlocks) Export() []BlockRequest {
	var out []BlockRequest
	for _, b := range d.List() {
		if b.Warning {
			continue
		}
		out = append(out, BlockRequest{Network: b.Network, Suffix: b.Suffix, Action: b.Action, Duration: b.Remaining, Reason: b.Reason, TagName: b.TagName, TagValue: b.TagValue})
	}
	return out
}

// publish builds and stores the block set from d.blocks; d.mu is held.
func (d *DynBlocks) publish() {
	list := make([]*Block, 0, len(d.blocks))
	for _, b := range d.blocks {
		list = append(list, b)
	}
	d.set.Store(newBlockSet(list))
	d.stats.setActive(list)
}

func (d *DynBlocks) logBlock(msg string, b *Block, now int64) {
	attrs := []slog.Attr{slog.String("block", b.key()), slog.String("action", b.Action.String()),
		slog.Duration("duration", b.remaining(now)), slog.String("reason", b.Reason),
		slog.String("group", b.Group), slog.String("rule", b.Rule)}
	level := slog.LevelInfo
	if b.Warning {
		level = slog.LevelWarn
	}
	d.log.LogAttrs(context.Background(), level, msg, attrs...)
}

func (b *Block) info(now int64, wall time.Time) BlockInfo {
	bi := BlockInfo{Key: b.key(), Suffix: b.Suffix, Action: b.Action.String(), Reason: b.Reason, Group: b.Group, Rule: b.Rule,
		Warning: b.Warning, Remaining: b.remaining(now), Until: wall.Add(b.remaining(now)), Hits: b.Hits(), TagName: b.TagName, TagValue: b.TagValue}
	if b.Suffix == "" {
		bi.Network = b.Prefix.String()
	}
	return bi
}
