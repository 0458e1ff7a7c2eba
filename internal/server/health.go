package server

import (
	"context"
	"log/slog"
	"sync"

	"github.com/dnsfront/dnsfront/engine/lb"
)

// health runs the health checks of the current backend set; a reload replaces it.
type health struct {
	mu      sync.Mutex
	checker *lb.Checker
	cancel  context.CancelFunc
}

func (h *health) start(set *lb.Set, log *slog.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopLocked()
	ctx, cancel := context.WithCancel(context.Background())
	h.checker, h.cancel = lb.NewChecker(set, log), cancel
	h.checker.Start(ctx)
}

func (h *health) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopLocked()
}

func (h *health) stopLocked() {
	if h.checker != nil {
		h.cancel()
		h.checker.Stop()
		h.checker = nil
	}
}
