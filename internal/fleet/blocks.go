package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Block is a dynamic block shared by the fleet.
type Block struct {
	Prefix netip.Prefix `json:"prefix"`
	Until  time.Time    `json:"until"`
	Reason string       `json:"reason"`
	// Action is what the engine does to a blocked client (its dynamic-block action name).
	Action  string    `json:"action"`
	Origin  string    `json:"origin"`
	Written time.Time `json:"written"`
}

// blockName is the etcd key part of a prefix: '/' cannot be in it.
func blockName(p netip.Prefix) string { return strings.Replace(p.Masked().String(), "/", "_", 1) }

// PutBlock shares a block of prefix until the given time. It is written
// with a lease of the remaining duration, so etcd deletes it by itself at
// expiry, even if no member is left to do it, and every member hears of the
// removal through OnUnblock.
func (f *Fleet) PutBlock(ctx context.Context, prefix netip.Prefix, until time.Time, reason, action string) error {
	if !prefix.IsValid() {
		return fmt.Errorf("fleet: block: invalid prefix")
	}
	// etcd leases count whole seconds: round up, so that a block never ends early.
	ttl := int64((time.Until(until) + time.Second - 1) / time.Second)
	if ttl < 1 {
		return fmt.Errorf("fleet: block %s: already expired at %s", prefix, until.UTC().Format(time.RFC3339))
	}
	val, err := jsonString(Block{Prefix: prefix.Masked(), Until: until.UTC(), Reason: reason, Action: action, Origin: f.opt.Member, Written: time.Now().UTC()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opt.DialTimeout)
	defer cancel()
	lease, err := f.cli.Grant(ctx, ttl)
	if err != nil {
		return fmt.Errorf("fleet: block %s: lease: %w", prefix, err)
	}
	if _, err := f.cli.Put(ctx, f.prefix+blocksDir+blockName(prefix), val, clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("fleet: block %s: %w", prefix, err)
	}
	return nil
}

// DeleteBlock removes a shared block everywhere.
func (f *Fleet) DeleteBlock(ctx context.Context, prefix netip.Prefix) error {
	ctx, cancel := context.WithTimeout(ctx, f.opt.DialTimeout)
	defer cancel()
	if _, err := f.cli.Delete(ctx, f.prefix+blocksDir+blockName(prefix)); err != nil {
		return fmt.Errorf("fleet: unblock %s: %w", prefix, err)
	}
	return nil
}

func (f *Fleet) applyBlock(name string, val []byte, deleted bool) func() {
	p, err := netip.ParsePrefix(strings.Replace(name, "_", "/", 1))
	if err != nil {
		f.log.Error("fleet: ignoring a malformed block key", "key", f.prefix+blocksDir+name, "err", err)
		return nil
	}
	if deleted {
		f.mu.Lock()
		_, had := f.blocks[p]
		delete(f.blocks, p)
		f.mu.Unlock()
		if !had {
			return nil
		}
		return f.unblockFn(p)
	}
	var b Block
	if err := json.Unmarshal(val, &b); err != nil || b.Prefix != p {
		f.log.Error("fleet: ignoring a malformed block record", "key", f.prefix+blocksDir+name, "err", err)
		return nil
	}
	f.mu.Lock()
	old, had := f.blocks[p]
	f.blocks[p] = b
	f.noteLag(b.Written)
	f.mu.Unlock()
	if had && old == b {
		return nil
	}
	return func() {
		if f.opt.OnBlock != nil {
			f.opt.OnBlock(b)
		}
	}
}

func (f *Fleet) unblockFn(p netip.Prefix) func() {
	return func() {
		if f.opt.OnUnblock != nil {
			f.opt.OnUnblock(p)
		}
	}
}
