package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfig runs `dnsfront check-config` on good and broken files: a broken file
// exits non-zero with file:line:column and the key path of each problem.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name, yaml string
		ok         bool
		want       []string // substrings of the output; %s is the file's path
	}{
		{
			name: "good",
			yaml: `
binds:
  - listen_address: "127.0.0.1:5353"
    protocol: Do53
backends:
  - address: "127.0.0.1:53"
    name: resolver1
`,
			ok:   true,
			want: []string{"%s: configuration OK"},
		},
		{
			name: "typo key",
			yaml: `binds:
  - listen_adress: "127.0.0.1:5353"
    protocol: Do53
backends:
  - address: "127.0.0.1:53"
`,
			want: []string{"%s:2:5:", "binds[0].listen_adress", `did you mean "listen_address"`},
		},
		{
			name: "wrong type",
			yaml: `general:
  event_loops: "many"
binds:
  - listen_address: "127.0.0.1:5353"
backends:
  - address: "127.0.0.1:53"
`,
			want: []string{"%s:2:16:", "general.event_loops"},
		},
		{
			name: "bad protocol",
			yaml: `binds:
  - listen_address: "127.0.0.1:5353"
    protocol: DNSCrypt
backends:
  - address: "127.0.0.1:53"
`,
			want: []string{"%s:3:15:", "binds[0].protocol", `"DNSCrypt"`},
		},
		{
			name: "bad value",
			yaml: `binds:
  - listen_address: "127.0.0.1:5353"
backends:
  - address: "127.0.0.1:53"
    udp_timeout: 999
`,
			want: []string{"%s:5:18:", "backends[0].udp_timeout"},
		},
		{
			name: "yaml syntax",
			yaml: "binds:\n  - listen_address: \"127.0.0.1:5353\n",
			want: []string{"%s:2:"},
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("case%d.yaml", i))
			WriteFile(t, path, []byte(c.yaml))
			out, code := RunCLI(t, "check-config", "--config", path)
			if c.ok != (code == 0) {
				t.Errorf("exit code %d, want ok=%v; output:\n%s", code, c.ok, out)
			}
			for _, w := range c.want {
				if strings.Contains(w, "%s") {
					w = fmt.Sprintf(w, path)
				}
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestServeRejectsBrokenConfig: serve on a broken file exits non-zero at once with the
// same positioned error instead of starting.
func TestServeRejectsBrokenConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "broken.yaml")
	yaml := "binds:\n  - listen_address: \"127.0.0.1:5353\"\n    protocol: DNSCrypt\nbackends:\n  - address: \"127.0.0.1:53\"\n"
	WriteFile(t, path, []byte(yaml))
	out, code := RunCLI(t, "serve", "--config", path)
	if code == 0 || !strings.Contains(out, path+":3:15:") || !strings.Contains(out, "binds[0].protocol") {
		t.Errorf("serve on a broken file: exit %d, output:\n%s", code, out)
	}
}
