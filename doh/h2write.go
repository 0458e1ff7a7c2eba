package doh

import "golang.org/x/net/http2"

// Writing HTTP/2 frames straight into the session's output buffer. x/net's
// Framer would do it through a per-connection frame buffer and a struct of
// its own (about 350 bytes that every idle connection kept); our frames are
// few and simple enough to append in place.
//
// Invariants:
//   - Every frame is appended whole: a frame header is never written
//     without its payload.
//   - No payload exceeds the peer's SETTINGS_MAX_FRAME_SIZE: callers split
//     DATA (send) and header blocks (writeResponse).

// frameHeader appends a frame header for a payload of length bytes.
func (c *h2conn) frameHeader(length int, typ frameType, flags uint8, stream uint32) {
	c.s.out.append(byte(length>>16), byte(length>>8), byte(length), byte(typ), flags,
		byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream))
}

func (c *h2conn) appendUint32(v uint32) {
	c.s.out.append(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// writeSettings writes our SETTINGS: (ID, value) pairs.
func (c *h2conn) writeSettings(settings ...http2.Setting) {
	c.frameHeader(6*len(settings), frameSettings, 0, 0)
	for _, st := range settings {
		c.s.out.append(byte(st.ID>>8), byte(st.ID))
		c.appendUint32(st.Val)
	}
}

func (c *h2conn) writeSettingsAck() { c.frameHeader(0, frameSettings, flagAck, 0) }

func (c *h2conn) writePingAck(data []byte) {
	c.frameHeader(8, framePing, flagAck, 0)
	c.s.out.append(data[:8]...)
}

func (c *h2conn) writeWindowUpdate(stream, inc uint32) {
	c.frameHeader(4, frameWindowUpdate, 0, stream)
	c.appendUint32(inc)
}

func (c *h2conn) writeGoAway(last uint32, code h2ErrCode) {
	c.frameHeader(8, frameGoAway, 0, 0)
	c.appendUint32(last)
	c.appendUint32(uint32(code))
}

func (c *h2conn) writeRSTStream(stream uint32, code h2ErrCode) {
	c.frameHeader(4, frameRSTStream, 0, stream)
	c.appendUint32(uint32(code))
}

func (c *h2conn) writeData(stream uint32, end bool, data []byte) {
	var flags uint8
	if end {
		flags = flagEndStream
	}
	c.frameHeader(len(data), frameData, flags, stream)
	c.s.out.append(data...)
}
