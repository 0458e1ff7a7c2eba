// Package ocsp manages the life of OCSP staples (RFC 6960 responses stapled
// under RFC 6066 status_request): loading them from files, validating them
// against the certificate and its issuer, generating them for a local PKI,
// fetching and refreshing them from the CA's responder, caching them on disk
// and reporting their status.
//
// Concurrency rule: the Manager runs its own goroutines and never reaches into
// the engine; it publishes staples through a callback.
package ocsp
