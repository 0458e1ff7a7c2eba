package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// testCA issues the certificates of an etcd run with client-certificate
// authentication: etcd takes the user name from the client's CN.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key}
	ca.file = ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(name, typ string, der []byte) string {
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return p
}

// issue returns the certificate and key files of cn, for a server (with
// 127.0.0.1 as its address) or a client.
func (ca *testCA) issue(cn string, server bool, serial int64) (string, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write(cn+".pem", "CERTIFICATE", der), ca.write(cn+".key", "PRIVATE KEY", kder)
}

// TestEtcdTLSAndRBAC runs the fleet as docs/fleet.md deploys it: etcd over
// TLS with client certificates, auth on, and dnsfront's user limited to
// its fleet's prefix.
func TestEtcdTLSAndRBAC(t *testing.T) {
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue("etcd", true, 2)
	rootCert, rootKey := ca.issue("root", false, 3)
	dnsCert, dnsKey := ca.issue("dnsfront", false, 4)
	otherCert, otherKey := ca.issue("intruder", false, 5)

	rootTLS, err := TLSConfig(ca.file, rootCert, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	etcd := startEtcdWith(t, 1, "https", &http.Client{Transport: &http.Transport{TLSClientConfig: rootTLS}},
		"--cert-file", srvCert, "--key-file", srvKey, "--client-cert-auth", "--trusted-ca-file", ca.file)

	// The RBAC of docs/fleet.md, through the client API (etcdctl's calls).
	root, err := clientv3.New(clientv3.Config{Endpoints: etcd.endpoints(), TLS: rootTLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	steps := []func() error{
		func() error {
			_, err := root.UserAddWithOptions(ctx, "root", "", &clientv3.UserAddOptions{NoPassword: true})
			return err
		},
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "dnsfront-test"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "dnsfront-test", "/dnsfront/test/", clientv3.GetPrefixRangeEnd("/dnsfront/test/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error {
			_, err := root.UserAddWithOptions(ctx, "dnsfront", "", &clientv3.UserAddOptions{NoPassword: true})
			return err
		},
		func() error { _, err := root.UserGrantRole(ctx, "dnsfront", "dnsfront-test"); return err },
		func() error { _, err := root.Put(ctx, "/registry/secret", "kubernetes"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("rbac step %d: %v", i, err)
		}
	}

	memberTLS := func(cert, key string) *tls.Config {
		c, err := TLSConfig(ca.file, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	clk := epochClock(time.Hour)
	start := func(name string, cfg *tls.Config) *member {
		return startMember(t, name, etcd.endpoints(), memberOpts{clock: clk, tls: cfg})
	}
	a := start("a", memberTLS(dnsCert, dnsKey))
	b := start("b", memberTLS(dnsCert, dnsKey))
	testutil.Eventually(t, wait, "shared keys over TLS with RBAC", func() bool {
		return sameEncryptingKey(a, b) && a.Connected() && b.Connected()
	})
	p := netip.MustParsePrefix("203.0.113.0/24")
	if err := a.PutBlock(context.Background(), p, time.Now().Add(time.Minute), "test", "drop"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "the block on b", func() bool { return b.hasBlock(p) })

	// dnsfront's user reaches only its prefix.
	dns, err := clientv3.New(clientv3.Config{Endpoints: etcd.endpoints(), TLS: memberTLS(dnsCert, dnsKey), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	if _, err := dns.Get(ctx, "/registry/secret"); err == nil {
		t.Fatal("dnsfront's user read outside its prefix")
	}
	// A certificate of a user etcd does not know gets nothing, and says so.
	x := start("x", memberTLS(otherCert, otherKey))
	testutil.Eventually(t, wait, "the intruder reporting its error", func() bool { return x.Status().LastError != "" })
	if x.Connected() || len(x.ring()) != 0 {
		t.Fatal("a member without a role joined the fleet")
	}
	if _, err := TLSConfig(ca.file, dnsCert, ""); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("certificate without key: %v", err)
	}
}
