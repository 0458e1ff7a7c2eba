package doh

import (
	"bytes"
	"encoding/base64"
	"net/netip"
	"strconv"
)

// method is the request method as far as RFC 8484 cares.
type method uint8

const (
	methodOther method = iota
	methodGET
	methodPOST
	methodHEAD
)

func parseMethod(m []byte) method {
	switch string(m) { // no allocation: the compiler compares in place
	case "GET":
		return methodGET
	case "POST":
		return methodPOST
	case "HEAD":
		return methodHEAD
	}
	return methodOther
}

// ctype is what the request's content-type says.
type ctype uint8

const (
	ctypeMissing ctype = iota
	ctypeDNS
	ctypeOther
)

func parseContentType(v []byte) ctype {
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	if bytes.EqualFold(bytes.TrimSpace(v), []byte("application/dns-message")) {
		return ctypeDNS
	}
	return ctypeOther
}

// reject is a request refused before it reaches the engine: a status and
// the short text body explaining it.
type reject struct {
	status int
	body   string
}

var noReject = reject{}

func (r reject) ok() bool { return r.status == 0 }

// route applies RFC 8484 to a request head. For a GET it decodes the dns
// parameter into *body. For a POST the body is still to come.
func (c *config) route(m method, target []byte, ct ctype, body *[]byte) reject {
	path, query := target, []byte(nil)
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i+1:]
	}
	if !c.matchPath(path) {
		return reject{404, "not found\n"}
	}
	switch m {
	case methodGET:
		param, found := queryParam(query, "dns")
		if !found || len(param) == 0 {
			return reject{400, "bad request: missing dns parameter\n"}
		}
		// Padding is not part of RFC 8484's encoding, but clients send it.
		param = bytes.TrimRight(param, "=")
		n := base64.RawURLEncoding.DecodedLen(len(param))
		if n > c.maxBody {
			return reject{413, "dns parameter too large\n"}
		}
		if cap(*body) < n {
			*body = make([]byte, n, max(n, 512))
		}
		n, err := base64.RawURLEncoding.Decode((*body)[:n], param)
		if err != nil {
			return reject{400, "bad request: dns parameter is not base64url\n"}
		}
		*body = (*body)[:n]
		return noReject
	case methodPOST:
		if ct != ctypeDNS {
			return reject{415, "content-type must be application/dns-message\n"}
		}
		return noReject
	}
	return reject{405, "method not allowed\n"}
}

func (c *config) matchPath(p []byte) bool {
	for _, want := range c.paths {
		if c.exact {
			if string(p) == want {
				return true
			}
		} else if len(p) >= len(want) && string(p[:len(want)]) == want {
			return true
		}
	}
	return false
}

// queryParam finds key=value in a URL query without allocating.
func queryParam(q []byte, key string) ([]byte, bool) {
	for len(q) > 0 {
		var kv []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, nil
		}
		if len(kv) > len(key) && kv[len(key)] == '=' && string(kv[:len(key)]) == key {
			return kv[len(key)+1:], true
		}
		if string(kv) == key {
			return nil, true
		}
	}
	return nil, false
}

// checkBody validates a complete query body.
func checkBody(body []byte) reject {
	if err := validateQuery(body); err != nil {
		return reject{400, "bad request: invalid DNS message: " + err.Error() + "\n"}
	}
	return noReject
}

// forwardedFor returns the right-most address of an X-Forwarded-For value:
// the one added by the proxy next to us, the only one we can trust.
func forwardedFor(v []byte) netip.Addr {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	v = bytes.TrimSpace(v)
	// Strings of []byte in a call argument that does not escape do not allocate.
	a, err := netip.ParseAddr(string(v))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// field is one response header, produced for both HTTP versions.
type field struct{ name, value string }

// responseFields lists the headers of a response, without :status.
func (c *config) responseFields(dst []field, status int, body []byte, isDNS bool) []field {
	if isDNS {
		dst = append(dst, field{"content-type", "application/dns-message"})
	} else {
		dst = append(dst, field{"content-type", "text/plain; charset=utf-8"})
	}
	dst = append(dst, field{"content-length", strconv.Itoa(len(body))})
	if isDNS && c.cacheControl {
		ttl, ok := minTTL(body)
		if !ok {
			ttl = 0
		}
		dst = append(dst, field{"cache-control", "max-age=" + strconv.FormatUint(uint64(ttl), 10)})
	}
	if status == 405 {
		dst = append(dst, field{"allow", "GET, POST"})
	}
	for _, h := range c.custom {
		dst = append(dst, field{h.Key, h.Value})
	}
	return dst
}

func statusBody(status int) string {
	switch status {
	case 502:
		return "bad gateway: backend failure\n"
	case 504:
		return "gateway timeout: backend did not answer\n"
	case 431:
		return "request header fields too large\n"
	case 413:
		return "request too large\n"
	}
	return strconv.Itoa(status) + "\n"
}
