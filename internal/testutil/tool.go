package testutil

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// aptPackages names the Debian package of each real peer the tests run, for
// the message of a missing one (.ci/run installs them).
var aptPackages = map[string]string{
	"curl":             "curl",
	"dig":              "bind9-dnsutils",
	"dnsdist":          "dnsdist",
	"dnsperf":          "dnsperf",
	"dnstap":           "golang-github-dnstap-golang-dnstap-cli",
	"etcd":             "etcd-server",
	"h2load":           "nghttp2-client",
	"kdig":             "knot-dnsutils",
	"nghttp":           "nghttp2-client",
	"openssl":          "openssl",
	"systemd-analyze":  "systemd",
	"systemd-sysusers": "systemd",
	"unbound":          "unbound",
}

// InCI reports whether the environment variable CI is set to a true value,
// as CI runners set it (CI=true).
func InCI() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b // an unparsable value still means a CI
}

// Tool returns the path of an external program a test needs. When it is
// not installed the test fails under CI, which must run every real-peer
// test, and is skipped elsewhere with the package that provides it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	missing := name + " is not installed"
	if pkg, ok := aptPackages[name]; ok {
		missing += " (apt-get install -y " + pkg + ")"
	}
	if InCI() {
		t.Fatalf("%s: CI must run every real-peer test", missing)
	}
	t.Skip(missing)
	return ""
}
