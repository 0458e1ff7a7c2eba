package server

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/dnsfront/dnsfront/config"
)

func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestAvailableMemory(t *testing.T) {
	const meminfo = "MemTotal:        8000000 kB\nMemFree: 1 kB\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"cgroup v2 of the process", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/system.slice/dnsfront.service\n",
			"sys/fs/cgroup/system.slice/dnsfront.service/memory.max": "1073741824\n"}, 1 << 30},
		{"cgroup v2 unlimited: the machine", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"}, 8000000 << 10},
		{"container root", map[string]string{"proc/meminfo": meminfo, "sys/fs/cgroup/memory.max": "536870912"}, 512 << 20},
		{"cgroup v1", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "268435456"}, 256 << 20},
		{"cgroup v1 no limit", map[string]string{"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"}, 8000000 << 10},
		{"cgroup above the machine", map[string]string{"proc/meminfo": meminfo, "sys/fs/cgroup/memory.max": "99999999999999"}, 8000000 << 10},
		{"nothing known", map[string]string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := availableMemory(fakeRoot(t, tc.files)); got != tc.want {
				t.Errorf("availableMemory = %d, want %d", got, tc.want)
			}
		})
	}
	if availableMemory("/") <= 0 {
		t.Error("no memory found on this machine")
	}
}

// TestMemoryLimitApplied: start and reload apply general.memory_limit; GOMEMLIMIT wins.
func TestMemoryLimitApplied(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	parse := func(extra string) *config.Config {
		cfg, err := config.Parse("m.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\n"+extra))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got := setMemoryLimit(parse("general: {memory_limit: 256MiB}\n"), nil); got != 256<<20 || debug.SetMemoryLimit(-1) != 256<<20 {
		t.Errorf("256MiB: applied %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
	want := availableMemory("/") * 70 / 100
	if got := setMemoryLimit(parse(""), nil); got < want-1<<20 || got > want+1<<20 || debug.SetMemoryLimit(-1) != got {
		t.Errorf("default: applied %d, want 70%% of %d", got, availableMemory("/"))
	}
	if got := setMemoryLimit(parse("general: {memory_limit: \"off\"}\n"), nil); got != 0 || debug.SetMemoryLimit(-1) < 1<<62 {
		t.Errorf("off: applied %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
	_, err := config.Parse("m.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\ngeneral:\n  memory_limit: 150%\n"))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:3:") {
		t.Errorf("150%%: %v, want an error at m.yaml:3", err)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	setMemoryLimit(parse("general: {memory_limit: 64MiB}\n"), nil)
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("GOMEMLIMIT set: runtime limit %d, want it left at 1GiB", got)
	}
}
