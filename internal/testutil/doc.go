// Package testutil holds the helpers that tests across the module share: a
// condition wait with a deadline (Eventually), the lookup of a real peer
// program that fails under CI instead of skipping (Tool), and a fake DNS
// server on loopback (StartDNS), and ports reserved across the test processes
// of the machine (FreePort). The test PKI is devpki.TestPKI.
//
// Only tests import this package. Its helpers stop what they start in
// t.Cleanup; the only package-level state is the port reservations, which
// last as long as the process.
package testutil
