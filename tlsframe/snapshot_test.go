package tlsframe

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuildSnapshotErrorsNameTheFile(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	a := p.issue(t, "a.test", false, "a.test")
	spec := a.writeFiles(t, dir)

	s, err := BuildSnapshot([]CertSpec{spec}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := s.CertIDs(); len(ids) != 1 || len(ids[0]) != 64 {
		t.Fatalf("ids %v", ids)
	}
	if s.Leaf(s.CertIDs()[0]).Subject.CommonName != "a.test" || len(s.Chain(s.CertIDs()[0])) != 2 {
		t.Fatal("leaf/chain accessors")
	}

	missing := spec
	missing.KeyFile = filepath.Join(dir, "missing.key")
	if _, err := BuildSnapshot([]CertSpec{missing}, Options{}, nil); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing key: %v", err)
	}
	other := p.issue(t, "b.test", false, "b.test")
	wrong := spec
	wrong.KeyFile = other.writeFiles(t, dir).KeyFile
	if _, err := BuildSnapshot([]CertSpec{wrong}, Options{}, nil); err == nil || !strings.Contains(err.Error(), "b.test.key") {
		t.Errorf("mismatched key: %v", err)
	}
	// Chain in the wrong order (CA first).
	reversed := filepath.Join(dir, "reversed.pem")
	blocks := bytes.SplitAfter(a.chainPEM, []byte("-----END CERTIFICATE-----\n"))
	os.WriteFile(reversed, append(append([]byte{}, blocks[1]...), blocks[0]...), 0o600)
	if _, err := BuildSnapshot([]CertSpec{{ChainFile: reversed, KeyFile: spec.KeyFile}}, Options{}, nil); err == nil || !strings.Contains(err.Error(), "reversed.pem") {
		t.Errorf("reversed chain: %v", err)
	}
	if _, err := BuildSnapshot([]CertSpec{spec, spec}, Options{}, nil); err == nil {
		t.Error("duplicate certificate accepted")
	}
	if _, err := BuildSnapshot([]CertSpec{spec}, Options{SessionTickets: true}, nil); err == nil {
		t.Error("session tickets without a key ring accepted")
	}
}

func TestWithStaple(t *testing.T) {
	b := newBothPKI(t)
	id := b.snap.CertIDs()[1]
	n := b.snap.WithStaple(id, nil)
	if ci, _ := n.Cert(id); ci.OCSPStaple != nil {
		t.Fatal("staple not removed")
	}
	if ci, _ := b.snap.Cert(id); ci.OCSPStaple == nil {
		t.Fatal("original snapshot changed")
	}
	if n.WithStaple("unknown", nil) != n {
		t.Fatal("unknown id should return the receiver")
	}
}

func TestParseOptions(t *testing.T) {
	if v, err := ParseVersion("tls1.3"); err != nil || v != tls.VersionTLS13 {
		t.Fatal(v, err)
	}
	if _, err := ParseVersion("ssl3"); err == nil {
		t.Fatal("ssl3 accepted")
	}
	cs, err := ParseCipherSuites("ECDHE-ECDSA-AES128-GCM-SHA256:TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
	if err != nil || len(cs) != 2 || cs[1] != tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 {
		t.Fatal(cs, err)
	}
	if _, err := ParseCipherSuites("RC4-MD5"); err == nil {
		t.Fatal("RC4 accepted")
	}
	cv, err := ParseCurves("X25519MLKEM768,prime256v1")
	if err != nil || len(cv) != 2 || cv[0] != tls.X25519MLKEM768 || cv[1] != tls.CurveP256 {
		t.Fatal(cv, err)
	}
	// Lower-case Go names and every spelling of a group are one list: config, the server
	// and the bench client all parse here, so what check-config accepts also starts.
	cs, err = ParseCipherSuites("tls_ecdhe_ecdsa_with_chacha20_poly1305_sha256")
	if err != nil || len(cs) != 1 || cs[0] != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Fatal(cs, err)
	}
	cv, err = ParseCurves("p256 P_384:secp521r1,SecP256r1MLKEM768,p384mlkem1024")
	want := []tls.CurveID{tls.CurveP256, tls.CurveP384, tls.CurveP521, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024}
	if err != nil || !slices.Equal(cv, want) {
		t.Fatal(cv, err)
	}
	if _, err := ParseCurves("X448"); err == nil || !strings.Contains(err.Error(), `"X448"`) {
		t.Fatal("X448 accepted, or the error does not name it:", err)
	}
}
