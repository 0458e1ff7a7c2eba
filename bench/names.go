package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// Question is one name to ask, in dnsperf's data-file form: "qname [qtype]".
type Question struct {
	Name string
	Type uint16
}

// DefaultQuestions are the names asked when no file is given: the records of
// dnsfront's demo backend (dnsfront.test), including one NXDOMAIN.
func DefaultQuestions() []Question {
	return []Question{
		{"www.dnsfront.test.", dns.TypeA},
		{"www.dnsfront.test.", dns.TypeAAAA},
		{"nx.dnsfront.test.", dns.TypeA},
	}
}

// LoadQuestions reads a names file: one "qname [qtype]" per line, qtype A
// when absent, blank lines and lines starting with '#' or ';' ignored.
func LoadQuestions(path string) ([]Question, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: names: %w", err)
	}
	defer f.Close()
	return parseQuestions(path, f)
}

func parseQuestions(path string, r io.Reader) ([]Question, error) {
	var qs []Question
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		if len(f) > 2 {
			return nil, fmt.Errorf("bench: %s:%d: want \"qname [qtype]\", got %d fields", path, line, len(f))
		}
		name := f[0]
		if _, ok := dns.IsDomainName(name); !ok {
			return nil, fmt.Errorf("bench: %s:%d: %q is not a domain name", path, line, name)
		}
		q := Question{Name: dns.Fqdn(name), Type: dns.TypeA}
		if len(f) == 2 {
			t, ok := dns.StringToType[strings.ToUpper(f[1])]
			if !ok {
				return nil, fmt.Errorf("bench: %s:%d: unknown qtype %q", path, line, f[1])
			}
			q.Type = t
		}
		qs = append(qs, q)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("bench: %s: no names", path)
	}
	return qs, nil
}

// wireQuery is a question packed once: a query message with ID 0, ready to
// be copied and stamped with an ID, and its question section for checking
// answers.
type wireQuery struct {
	msg      []byte
	question []byte // msg[12:]: the query holds one question and nothing else
}

func packQuestions(qs []Question) ([]wireQuery, error) {
	out := make([]wireQuery, len(qs))
	for i, q := range qs {
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Type)
		m.Id = 0
		m.RecursionDesired = true
		b, err := m.Pack()
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", q.Name, err)
		}
		out[i] = wireQuery{msg: b, question: b[12:]}
	}
	return out, nil
}

// checkAnswer verifies that resp answers the query with the given ID and
// question: QR set, same ID, one question equal to ours (names compared
// without regard to ASCII case), and an rcode that is an answer (NOERROR or
// NXDOMAIN). It returns the rcode name and an error kind, empty when the
// answer is good. Only the header and the question are read: parsing whole
// answers would spend client CPU that the server needs.
func checkAnswer(resp []byte, id uint16, q *wireQuery) (rcode string, kind string) {
	if len(resp) < 12 {
		return "", "short answer"
	}
	if got := uint16(resp[0])<<8 | uint16(resp[1]); got != id {
		return "", "wrong id"
	}
	if resp[2]&0x80 == 0 {
		return "", "not a response"
	}
	rc := int(resp[3] & 0x0f)
	rcode = dns.RcodeToString[rc]
	if rcode == "" {
		rcode = fmt.Sprintf("RCODE%d", rc)
	}
	if qd := uint16(resp[4])<<8 | uint16(resp[5]); qd != 1 {
		return rcode, "wrong question count"
	}
	if !sameQuestion(resp[12:], q.question) {
		return rcode, "wrong question"
	}
	if resp[2]&0x02 != 0 {
		return rcode, "truncated"
	}
	if rc != dns.RcodeSuccess && rc != dns.RcodeNameError {
		return rcode, "rcode " + rcode
	}
	return rcode, ""
}

// sameQuestion compares the question at the start of got with want: the
// name without regard to ASCII case (label length bytes are at most 63, so
// never look like letters), then type and class exactly.
func sameQuestion(got, want []byte) bool {
	if len(got) < len(want) || len(want) < 5 {
		return false
	}
	n := len(want) - 4
	return equalFoldASCII(got[:n], want[:n]) && string(got[n:len(want)]) == string(want[n:])
}

func equalFoldASCII(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x != y {
			if 'A' <= x && x <= 'Z' {
				x += 'a' - 'A'
			}
			if 'A' <= y && y <= 'Z' {
				y += 'a' - 'A'
			}
			if x != y {
				return false
			}
		}
	}
	return true
}
