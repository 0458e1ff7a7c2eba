package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binPath is the dnsfront executable built by Main for this run of the package's tests.
var binPath string

// Main builds the dnsfront binary into a temporary directory, runs the tests and removes
// the directory. Call it from TestMain: os.Exit(e2e.Main(m)).
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dnsfront-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	binPath, err = buildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	return m.Run()
}

// buildBinary runs `go build ./cmd/dnsfront` from the module root into dir.
func buildBinary(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "dnsfront")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/dnsfront")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/dnsfront in %s: %v\n%s", root, err, b)
	}
	return out, nil
}

// moduleRoot is the directory of the go.mod that holds this package.
func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if mod := strings.TrimSpace(string(b)); mod != "" && mod != os.DevNull {
			return filepath.Dir(mod), nil
		}
	}
	// go test runs in the package directory, two levels below the module root.
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("cannot find the module root (go env GOMOD failed and %s has no go.mod)", root)
	}
	return root, nil
}

// ModuleRoot returns the module's root directory, for tests that read files of the
// repository (examples/dev.yaml).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Binary returns the path of the dnsfront executable built for this run.
func Binary(t testing.TB) string {
	t.Helper()
	if binPath == "" {
		t.Fatal("e2e: the dnsfront binary was not built: TestMain must call e2e.Main")
	}
	return binPath
}
