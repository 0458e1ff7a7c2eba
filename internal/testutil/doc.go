// Package testutil holds the helpers that tests across the module share: a
// condition wait with a deadline (Eventually), the lookup of a real peer
// program that fails under CI instead of skipping (Tool), and a fake DNS
// server on loopback (StartDNS). The test PKI is devpki.TestPKI.
//
// Only tests import this package. Its helpers stop what they start in
// t.Cleanup and hold no package-level state.
package testutil
