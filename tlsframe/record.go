package tlsframe

import "fmt"

const (
	recordHeaderLen     = 5
	recordTypeHandshake = 0x16
	// maxCiphertext bounds a TLS 1.2 record; TLS 1.3 records are smaller.
	maxCiphertext = 16384 + 2048
	// maxHandshakeInput bounds what a client may send before its handshake
	// is done (a ClientHello, possibly fragmented, plus its second flight).
	maxHandshakeInput = 64 << 10
)

// firstRecord reports whether b holds the whole first record of a
// connection, after checking that it can be the start of a ClientHello:
// anything else is closed on the loop without spending a handshake worker.
func firstRecord(b []byte) (complete bool, err error) {
	if len(b) == 0 {
		return false, nil
	}
	if b[0] != recordTypeHandshake {
		return false, fmt.Errorf("tlsframe: first record has type %d, not a TLS handshake", b[0])
	}
	if len(b) >= 3 && b[1] != 3 {
		return false, fmt.Errorf("tlsframe: first record has version %d.%d, not TLS", b[1], b[2])
	}
	if len(b) < recordHeaderLen {
		return false, nil
	}
	n := int(b[3])<<8 | int(b[4])
	if n == 0 || n > maxCiphertext {
		return false, fmt.Errorf("tlsframe: first record has length %d", n)
	}
	return len(b) >= recordHeaderLen+n, nil
}
