package doh

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/http2"
)

// Reading HTTP/2 frames (RFC 9113 4 and 6). x/net's Framer writes our
// frames; reading is done here because the Framer allocates a frame value
// for every HEADERS and WINDOW_UPDATE it reads and wants the whole header
// block buffered before it validates it.
//
// Invariants:
//   - A frame is parsed only once all of it is buffered; it is at most
//     maxFrameSize (we never raise SETTINGS_MAX_FRAME_SIZE) plus its header.
//   - Every length and stream-identifier rule of RFC 9113 6.x is checked here,
//     before the frame reaches the stream state machine: the state machine
//     only sees frames that are well formed on the wire.
//   - While a header block is open (HEADERS or PUSH_PROMISE without
//     END_HEADERS) the only acceptable frame is a CONTINUATION of the same
//     stream (RFC 9113 6.10).

type frameType uint8

const (
	frameData         frameType = 0x0
	frameHeaders      frameType = 0x1
	framePriority     frameType = 0x2
	frameRSTStream    frameType = 0x3
	frameSettings     frameType = 0x4
	framePushPromise  frameType = 0x5
	framePing         frameType = 0x6
	frameGoAway       frameType = 0x7
	frameWindowUpdate frameType = 0x8
	frameContinuation frameType = 0x9
)

const (
	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

const (
	frameHeaderLen = 9
	// maxFrameSize is SETTINGS_MAX_FRAME_SIZE's initial value; we never
	// raise it, so one buffered frame is at most 16 kB + 9.
	maxFrameSize = 16384
)

// frame is one parsed frame. payload has padding and priority fields
// removed and points into the session's input: it is valid until the next
// Feed.
type frame struct {
	typ     frameType
	flags   uint8
	stream  uint32
	length  uint32 // on the wire, padding included (flow control counts it)
	payload []byte
	// The priority fields of a PRIORITY frame or a HEADERS frame with the
	// PRIORITY flag.
	hasPriority bool
	dependsOn   uint32
}

func (f *frame) has(flag uint8) bool { return f.flags&flag != 0 }

// h2Error is a connection error (stream 0) or a stream error of RFC 9113 5.4.
type h2Error struct {
	code   http2.ErrCode
	stream uint32
	why    string
}

func (e *h2Error) Error() string {
	if e.stream == 0 {
		return fmt.Sprintf("doh: h2 %v: %s", e.code, e.why)
	}
	return fmt.Sprintf("doh: h2 stream %d %v: %s", e.stream, e.code, e.why)
}

func connErr(code http2.ErrCode, why string) *h2Error { return &h2Error{code: code, why: why} }

func streamErr(id uint32, code http2.ErrCode, why string) *h2Error {
	return &h2Error{code: code, stream: id, why: why}
}

// parseFrame parses the frame at the start of in. n is 0 when more input is
// needed. A non-nil error is a connection or stream error for the caller to
// act on; n is then still the frame's size, so a stream error skips it.
func parseFrame(in []byte) (f frame, n int, err *h2Error) {
	if len(in) < frameHeaderLen {
		return f, 0, nil
	}
	length := uint32(in[0])<<16 | uint32(in[1])<<8 | uint32(in[2])
	if length > maxFrameSize {
		return f, 0, connErr(http2.ErrCodeFrameSize, fmt.Sprintf("frame of %d bytes over SETTINGS_MAX_FRAME_SIZE", length))
	}
	n = frameHeaderLen + int(length)
	if len(in) < n {
		return f, 0, nil
	}
	f = frame{
		typ:     frameType(in[3]),
		flags:   in[4],
		stream:  binary.BigEndian.Uint32(in[5:]) & 0x7fffffff,
		length:  length,
		payload: in[frameHeaderLen:n],
	}
	return f, n, f.check()
}

// check applies the per-type rules of RFC 9113 6.x.
func (f *frame) check() *h2Error {
	p := f.payload
	switch f.typ {
	case frameData, frameHeaders:
		if f.stream == 0 {
			return connErr(http2.ErrCodeProtocol, frameName(f.typ)+" on stream 0")
		}
		pad := 0
		if f.has(flagPadded) {
			if len(p) < 1 {
				return connErr(http2.ErrCodeFrameSize, "padded frame without pad length")
			}
			pad = int(p[0])
			p = p[1:]
		}
		if f.typ == frameHeaders && f.has(flagPriority) {
			if len(p) < 5 {
				return connErr(http2.ErrCodeFrameSize, "HEADERS too short for its priority")
			}
			f.hasPriority = true
			f.dependsOn = binary.BigEndian.Uint32(p) & 0x7fffffff
			p = p[5:]
		}
		if pad > len(p) {
			// Padding as long as the payload or longer (6.1, 6.2).
			return connErr(http2.ErrCodeProtocol, "padding longer than the payload")
		}
		p = p[:len(p)-pad]
		f.payload = p
	case framePriority:
		if f.stream == 0 {
			return connErr(http2.ErrCodeProtocol, "PRIORITY on stream 0")
		}
		if len(p) != 5 {
			return streamErr(f.stream, http2.ErrCodeFrameSize, "PRIORITY of length "+itoa(len(p)))
		}
		f.hasPriority = true
		f.dependsOn = binary.BigEndian.Uint32(p) & 0x7fffffff
	case frameRSTStream:
		if f.stream == 0 {
			return connErr(http2.ErrCodeProtocol, "RST_STREAM on stream 0")
		}
		if len(p) != 4 {
			return connErr(http2.ErrCodeFrameSize, "RST_STREAM of length "+itoa(len(p)))
		}
	case frameSettings:
		if f.stream != 0 {
			return connErr(http2.ErrCodeProtocol, "SETTINGS on a stream")
		}
		if f.has(flagAck) && len(p) != 0 {
			return connErr(http2.ErrCodeFrameSize, "SETTINGS ACK with a payload")
		}
		if len(p)%6 != 0 {
			return connErr(http2.ErrCodeFrameSize, "SETTINGS of length "+itoa(len(p)))
		}
	case framePushPromise:
		return connErr(http2.ErrCodeProtocol, "PUSH_PROMISE from a client")
	case framePing:
		if f.stream != 0 {
			return connErr(http2.ErrCodeProtocol, "PING on a stream")
		}
		if len(p) != 8 {
			return connErr(http2.ErrCodeFrameSize, "PING of length "+itoa(len(p)))
		}
	case frameGoAway:
		if f.stream != 0 {
			return connErr(http2.ErrCodeProtocol, "GOAWAY on a stream")
		}
		if len(p) < 8 {
			return connErr(http2.ErrCodeFrameSize, "GOAWAY of length "+itoa(len(p)))
		}
	case frameWindowUpdate:
		if len(p) != 4 {
			return connErr(http2.ErrCodeFrameSize, "WINDOW_UPDATE of length "+itoa(len(p)))
		}
		if binary.BigEndian.Uint32(p)&0x7fffffff == 0 {
			if f.stream == 0 {
				return connErr(http2.ErrCodeProtocol, "WINDOW_UPDATE of 0 on the connection")
			}
			return streamErr(f.stream, http2.ErrCodeProtocol, "WINDOW_UPDATE of 0")
		}
	case frameContinuation:
		if f.stream == 0 {
			return connErr(http2.ErrCodeProtocol, "CONTINUATION on stream 0")
		}
	}
	return nil
}

func (f *frame) increment() uint32 { return binary.BigEndian.Uint32(f.payload) & 0x7fffffff }

func frameName(t frameType) string {
	names := [...]string{"DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"}
	if int(t) < len(names) {
		return names[t]
	}
	return "frame type " + itoa(int(t))
}
