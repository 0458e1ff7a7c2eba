package e2e

import (
	"errors"
	"syscall"
)

// isReset reports whether err is a connection reset or broken pipe: how a peer that
// closed with unread data looks to the writer.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
