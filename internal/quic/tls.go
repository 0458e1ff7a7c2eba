package quic

import (
	"crypto/tls"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/dnsfront/dnsfront/tlsframe"
)

// tlsView gives each ClientHello the bind's current certificates: the snapshot that the
// reload transaction and the staple life cycle publish into the store, and the ticket keys
// of the bind's ring. The tls.Config made from them is kept while both are unchanged, so
// that a handshake pays a pointer comparison, not a clone.
type tlsView struct {
	store *tlsframe.Store
	alpn  []string
	cur   atomic.Pointer[tlsCached] // immutable once stored
}

type tlsCached struct {
	snap *tlsframe.Snapshot
	keys [][32]byte
	cfg  *tls.Config
}

var errNoCertificates = errors.New("quic: no certificate published yet")

func (v *tlsView) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	snap := v.store.Current()
	if snap == nil {
		return nil, errNoCertificates
	}
	var keys [][32]byte
	if tk := snap.TicketKeys(); tk != nil {
		keys = tk.Keys()
	}
	if c := v.cur.Load(); c != nil && c.snap == snap && slices.Equal(c.keys, keys) {
		return c.cfg, nil
	}
	c := &tlsCached{snap: snap, keys: keys, cfg: snap.ServerConfig(v.alpn)}
	v.cur.Store(c)
	return c.cfg, nil
}
