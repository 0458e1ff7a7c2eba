// Package fleet shares the little state that instances behind one anycast
// address must share, through etcd (go.etcd.io/etcd/client/v3):
//
//   - session-ticket keys rotated in lockstep: an elected member writes the
//     key of the next epoch ahead of time, sealed with AES-GCM, and every
//     member installs it as a decrypt-only key before it starts encrypting;
//   - OCSP staples fetched once per fleet: the leader publishes each
//     certificate's DER, the others receive it through OnStaple and must
//     validate it again before stapling it;
//   - dynamic blocks: written with an etcd lease, so that they expire by
//     themselves, and delivered to every member through OnBlock/OnUnblock.
//
// etcd is never on the query path: the server installs what this package
// hands to its callbacks, and keeps serving with what it has when etcd is
// unreachable. Ticket keys keep rotating then under a deterministic rule
// (HKDF over the last shared key and the epoch number), so that every member
// still derives the same keys; the connection is retried with capped
// exponential back-off and everything is read again when it returns.
//
// Concurrency: a Fleet runs its own goroutines (connection, watch, election,
// rotation). Its state is behind one mutex; callbacks are called one at a
// time, never with that mutex held, and must not block for long. All
// exported methods are safe for concurrent use.
package fleet
