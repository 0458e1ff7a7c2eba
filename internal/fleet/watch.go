package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Layout under /dnsfront/<name>/ (the prefix):
//
//	members/<member>        Member, with the member's session lease
//	election/<lease>        etcd's election keys; the lowest create revision leads
//	tickets/<epoch>         ticketRecord, sealed key of one epoch
//	staples/<cert sha256>   stapleRecord, the DER of one certificate's staple
//	blocks/<prefix>         Block, with a lease that ends with the block
const (
	membersDir  = "members/"
	electionDir = "election/"
	staplesDir  = "staples/"
	blocksDir   = "blocks/"
)

// Member is one instance registered in the fleet.
type Member struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// resync reads everything under the prefix and makes it this member's
// state: what was missed while disconnected is applied, blocks that expired
// meanwhile are removed. It returns the revision to watch from.
func (f *Fleet) resync(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opt.DialTimeout)
	defer cancel()
	resp, err := f.cli.Get(ctx, f.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", f.prefix, err)
	}
	f.mu.Lock()
	f.members = map[string]Member{}
	f.election = map[string]candidate{}
	f.mu.Unlock()
	var fns []func()
	seen := map[string]bool{}
	for _, kv := range resp.Kvs {
		seen[string(kv.Key)] = true
		fns = append(fns, f.apply(kv, false))
	}
	f.mu.Lock()
	for p := range f.blocks {
		if !seen[f.prefix+blocksDir+blockName(p)] {
			delete(f.blocks, p)
			fns = append(fns, f.unblockFn(p))
		}
	}
	f.applied = resp.Header.Revision
	f.lastSync = time.Now()
	f.mu.Unlock()
	f.runAll(fns)
	f.nudge()
	return resp.Header.Revision, nil
}

func (f *Fleet) runAll(fns []func()) {
	f.callback(func() {
		for _, fn := range fns {
			if fn != nil {
				fn()
			}
		}
	})
}

// watch applies every change after rev until the context ends or etcd
// breaks the watch (compaction, lost leader): then the session ends and the
// next one reads everything again.
func (f *Fleet) watch(ctx context.Context, rev int64) error {
	wch := f.cli.Watch(clientv3.WithRequireLeader(ctx), f.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		var fns []func()
		for _, ev := range resp.Events {
			fns = append(fns, f.apply(ev.Kv, ev.Type == mvccpb.DELETE))
		}
		f.mu.Lock()
		f.applied = resp.Header.Revision
		f.lastSync = time.Now()
		f.mu.Unlock()
		f.runAll(fns)
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("watch: closed")
}

// apply records one key's change in the state and returns the callback to
// run for it, if any (run later, without mu).
func (f *Fleet) apply(kv *mvccpb.KeyValue, deleted bool) func() {
	rel, ok := strings.CutPrefix(string(kv.Key), f.prefix)
	if !ok {
		return nil
	}
	dir, name, _ := strings.Cut(rel, "/")
	dir += "/"
	switch dir {
	case membersDir:
		f.mu.Lock()
		defer f.mu.Unlock()
		if deleted {
			delete(f.members, name)
			return nil
		}
		var m Member
		if json.Unmarshal(kv.Value, &m) == nil {
			f.members[name] = m
		}
	case electionDir:
		f.mu.Lock()
		defer f.mu.Unlock()
		if deleted {
			delete(f.election, name)
		} else {
			f.election[name] = candidate{rev: kv.CreateRevision, member: string(kv.Value)}
		}
	case ticketsDir:
		if !deleted {
			f.applyTicket(name, kv.Value)
		}
	case staplesDir:
		if !deleted {
			return f.applyStaple(name, kv.Value)
		}
	case blocksDir:
		return f.applyBlock(name, kv.Value, deleted)
	}
	return nil
}

func (f *Fleet) applyTicket(name string, val []byte) {
	e, err := strconv.ParseUint(name, 10, 64)
	var rec ticketRecord
	if err == nil {
		err = json.Unmarshal(val, &rec)
	}
	if err == nil && rec.Epoch != e {
		err = fmt.Errorf("record of epoch %d under key of epoch %d", rec.Epoch, e)
	}
	var key [32]byte
	if err == nil {
		key, err = f.sealer.open(e, rec.Sealed)
	}
	if err != nil {
		f.mu.Lock()
		f.unsealErr++
		f.mu.Unlock()
		f.log.Error("fleet: ignoring a ticket key from etcd", "key", f.prefix+ticketsDir+name, "err", err)
		return
	}
	f.mu.Lock()
	f.ring.shared[e] = key
	f.noteLag(rec.Written)
	f.mu.Unlock()
	f.nudge()
}

// noteLag records how long a change took from its writer to here. Called
// with mu held.
func (f *Fleet) noteLag(written time.Time) {
	if !written.IsZero() {
		f.lag = max(0, time.Since(written))
	}
}

// leader is the member whose election key is oldest. Called with mu held.
func (f *Fleet) leaderLocked() string {
	var best candidate
	for _, c := range f.election {
		if best.rev == 0 || c.rev < best.rev {
			best = c
		}
	}
	return best.member
}
