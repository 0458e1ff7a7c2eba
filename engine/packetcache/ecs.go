package packetcache

import (
	"time"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// EDNS Client Subnet (RFC 7871) in the cache.
//
// An answer to a query that carries a client subnet may hold for that subnet only, so the
// subnet is part of the key, compared byte for byte like the rest of it (dnsdist hashes
// the option into a 32-bit key and, with parse_ecs, compares the subnet to catch
// collisions; a full key needs neither). Two subnets can be in a key:
//   - the client's own option, read from the query by queryKey: answers to clients that
//     send different subnets never mix, whatever the backend;
//   - the subnet a frontend adds before forwarding (GetSubnet, InsertSubnet), which the
//     query in hand does not carry.
//
// Zero scope (dnsdist's "zero-scope" feature, RFC 7871 §7.3.1): a backend that answers
// with SCOPE PREFIX-LENGTH 0 says the answer holds for every client. InsertSubnet stores
// such an answer under the key of the query without the added subnet, so that every
// client shares it, and GetSubnet looks there first. It applies only when the client sent
// no subnet of its own (the caller says so with zeroScope), as in dnsdist: a client that
// sent one must get its own back, which a shared entry cannot promise. The shared entry
// has the key of a query without a subnet, which is also the key of the answers a pool
// stores when it sends no subnet (a SetDisableECS rule, or a pool without ECS that uses
// the same cache): one entry serves both, as in dnsdist (docs/protocols.md).
//
// Mismatches (RFC 7871 §7.3): an answer whose ECS option names another family, source
// prefix length or address than the subnet sent is not the answer for that subnet, and
// is stored neither for it nor with zero scope.

const (
	// ecsKeyLen is the most one subnet adds to a key: a tag, the family, the source
	// prefix length and up to 16 address octets.
	ecsKeyLen = 1 + 2 + 1 + 16

	ecsKeyClient   = 'c' // the client's own option
	ecsKeyFrontend = 'f' // the subnet a frontend adds
)

// appendECSKey writes the subnet e, tagged, at kb[n:] and returns the new key length. The
// scope is left out: it is 0 in queries and means nothing for the key.
func appendECSKey(kb *[maxKeyLen]byte, n int, tag byte, e dnswire.ECS) int {
	kb[n] = tag
	kb[n+1], kb[n+2] = byte(e.Family>>8), byte(e.Family)
	kb[n+3] = e.Source
	return n + 4 + copy(kb[n+4:], e.Addr[:e.AddrLen()])
}

// GetSubnet is Get for a query to which the frontend adds the client subnet sub before
// forwarding it: the answer must have been stored for that subnet, or with zero scope
// when zeroScope (the client sent no subnet itself).
func (c *Cache) GetSubnet(query []byte, sub dnswire.ECS, zeroScope bool, dst []byte, now time.Time) ([]byte, bool) {
	var kb [maxKeyLen]byte
	kl, nameEnd, ok := queryKey(query, &kb)
	if !ok {
		c.shards[0].misses.Add(1)
		return dst, false
	}
	if zeroScope {
		if out, hit := c.lookup(kb[:kl], nameEnd, query, dst, now, false); hit {
			return out, true
		}
	}
	kl = appendECSKey(&kb, kl, ecsKeyFrontend, sub)
	return c.lookup(kb[:kl], nameEnd, query, dst, now, true)
}

// InsertSubnet is Insert for the answer to a query sent with the client subnet sub (see
// GetSubnet). With zeroScope, an answer whose ECS options all have scope 0 is stored for
// every client, without them. An answer with an ECS option that names another subnet
// than sub is not stored at all (ECSMismatches). tempFailTTL, when not negative, is the
// lifetime of a SERVFAIL or REFUSED answer, as in InsertTempFailureTTL.
func (c *Cache) InsertSubnet(query, response []byte, sub dnswire.ECS, zeroScope bool, now time.Time, tempFailTTL int64) {
	tf := c.opts.TemporaryFailureTTL
	if tempFailTTL >= 0 {
		tf = uint32(min(tempFailTTL, 1<<32-1))
	}
	var kb [maxKeyLen]byte
	kl, nameEnd, ok := queryKey(query, &kb)
	if !ok {
		c.shards[0].uncacheable.Add(1)
		return
	}
	// A TC answer is refused by insertKey whatever its option says (RFC 7871 §7.3 checks
	// only answers without TC); one whose OPT record cannot be found is judged there too.
	if start, h, err := dnswire.FindOPT(response); err == nil && start >= 0 && response[2]&0x02 == 0 {
		a := dnswire.CheckECSAnswer(response, h, sub)
		if a.Mismatch {
			// RFC 7871 §7.3: not the answer for sub, so it holds for no subnet; as a
			// zero-scope entry it would reach every client.
			c.shards[0].ecsMismatches.Add(1)
			c.shards[0].uncacheable.Add(1)
			return
		}
		if zeroScope && a.ZeroScope && h.End() == len(response) {
			// Stored without the options: they named the subnet of the client whose
			// query brought the answer in, which is no other client's business. Every
			// one goes, as a second option would name it as well as the first.
			var buf [1232]byte
			shared, _, err := dnswire.RemoveOptions(append(buf[:0], response...), h, dnswire.OptionECS, h.RDOff)
			if err == nil {
				c.insertKey(kb[:kl], nameEnd, shared, now, tf)
				return
			}
		}
	}
	kl = appendECSKey(&kb, kl, ecsKeyFrontend, sub)
	c.insertKey(kb[:kl], nameEnd, response, now, tf)
}
