package doh

// Status is a response status the session counts.
type Status int

const (
	Status200 Status = iota
	Status400
	Status404
	Status405
	Status413
	Status415
	Status431
	Status502
	Status504
	Status403 // a forwarded client the ACL does not admit (the engine's decision)
	NumStatuses
)

// Code returns the HTTP status code.
func (s Status) Code() int {
	return [NumStatuses]int{200, 400, 404, 405, 413, 415, 431, 502, 504, 403}[s]
}

func statusFor(code int) Status {
	for i := range NumStatuses {
		if i.Code() == code {
			return i
		}
	}
	return Status502
}

// Abuse is a kind of misbehaviour the session defends against.
type Abuse int

const (
	// AbuseRapidReset: too many client RST_STREAMs of unanswered streams (CVE-2023-44487).
	AbuseRapidReset Abuse = iota
	// AbuseContinuationFlood: too many CONTINUATION frames or too large a header block (CVE-2024-27316).
	AbuseContinuationFlood
	// AbuseHPACKBomb: a header block that decodes to far more than MaxHeaderListSize.
	AbuseHPACKBomb
	// AbuseSettingsFlood: too many SETTINGS frames.
	AbuseSettingsFlood
	// AbusePingFlood: too many PING frames.
	AbusePingFlood
	// AbuseZeroWindow: responses held back by a flow-control window the client
	// does not open, past MaxConnMemory or IdleTimeout.
	AbuseZeroWindow
	// AbuseMemory: buffered input and bodies past MaxConnMemory.
	AbuseMemory
	// AbuseRefusedStream: streams beyond MaxConcurrentStreams (RST_STREAM REFUSED_STREAM).
	AbuseRefusedStream
	// AbuseHeaderListSize: request headers over MaxHeaderListSize (431).
	AbuseHeaderListSize
	NumAbuses
)

// String returns the metric label of the abuse kind.
func (a Abuse) String() string {
	return [NumAbuses]string{
		"rapid_reset", "continuation_flood", "hpack_bomb", "settings_flood", "ping_flood",
		"zero_window", "memory", "refused_stream", "header_list_size",
	}[a]
}

// Stats are a session's counters. A Session is used by one goroutine, so the
// counters are plain integers; the engine drains them on its loop.
type Stats struct {
	// Queries is the number of DNS queries emitted.
	Queries uint64
	// Responses counts responses sent, by status.
	Responses [NumStatuses]uint64
	// Abuse counts defences triggered, by kind.
	Abuse [NumAbuses]uint64
	// ProtocolErrors counts malformed HTTP: HTTP/2 connection errors and
	// stream errors (a malformed request is reset, not answered).
	ProtocolErrors uint64
	// IdleTimeouts counts connections closed by the idle deadline.
	IdleTimeouts uint64
	// Abandoned counts Respond/Fail calls for queries the client had
	// cancelled (HTTP/2 RST_STREAM) or whose connection was closing.
	Abandoned uint64
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Queries += o.Queries
	for i := range s.Responses {
		s.Responses[i] += o.Responses[i]
	}
	for i := range s.Abuse {
		s.Abuse[i] += o.Abuse[i]
	}
	s.ProtocolErrors += o.ProtocolErrors
	s.IdleTimeouts += o.IdleTimeouts
	s.Abandoned += o.Abandoned
}
