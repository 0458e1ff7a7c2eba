package server

import (
	"bufio"
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/memtune"
)

// setMemoryLimit applies general.memory_limit through debug.SetMemoryLimit, at start and
// on every reload, unless the GOMEMLIMIT environment variable is set (it wins, as GOGC
// wins over gc_percent). It returns the limit applied: 0 for none, -1 when GOMEMLIMIT decides.
func setMemoryLimit(cfg *config.Config, log *slog.Logger) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return -1
	}
	limit := cfg.General.MemoryLimit.Resolve(availableMemory("/"))
	if limit <= 0 {
		debug.SetMemoryLimit(math.MaxInt64)
	} else {
		debug.SetMemoryLimit(limit)
	}
	if log != nil {
		log.Info("memory limit", "memory_limit", cfg.General.MemoryLimit.String(), "bytes", limit)
	}
	return limit
}

// availableMemory is the memory this process may use: its cgroup's memory.max (cgroup
// v2, else v1's memory.limit_in_bytes) when set, and never more than the machine's
// memory; 0 when neither is known. root is "/" except in tests.
func availableMemory(root string) int64 {
	machine := machineMemory(root)
	if cg := cgroupLimit(root); cg > 0 && (machine == 0 || cg < machine) {
		return cg
	}
	return machine
}

func cgroupLimit(root string) int64 {
	var files []string
	if b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// v2: "0::/system.slice/dnsfront.service"; v1: "4:memory:/docker/…"
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				files = append(files, filepath.Join(root, "sys/fs/cgroup", parts[2], "memory.max"))
			case strings.Contains(","+parts[1]+",", ",memory,"):
				files = append(files, filepath.Join(root, "sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"))
			}
		}
	}
	// Inside a container the process's cgroup is the namespace's root.
	files = append(files, filepath.Join(root, "sys/fs/cgroup/memory.max"), filepath.Join(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// v1 writes "no limit" as a page-rounded MaxInt64.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			continue
		}
		return n
	}
	return 0
}

func machineMemory(root string) int64 {
	if root == "/" {
		var si syscall.Sysinfo_t
		if err := syscall.Sysinfo(&si); err == nil {
			return int64(si.Totalram) * int64(si.Unit)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// tuneGC paces the collector by general.gc_percent and general.gc_min_headroom
// (internal/memtune) unless the GOGC environment variable is set: the tuner starts with
// the server and a reload updates it.
func (s *Server) tuneGC(cfg *config.Config) {
	if os.Getenv("GOGC") != "" {
		return
	}
	g := &cfg.General
	switch {
	case g.GCPercent < 0:
		if s.gc != nil {
			s.gc.Stop()
			s.gc = nil
		}
		debug.SetGCPercent(-1)
	case s.gc == nil:
		s.gc = memtune.Start(memtune.Options{Percent: g.GCPercent, MinHeadroom: uint64(g.GCMinHeadroom), Log: s.log})
	default:
		s.gc.Update(g.GCPercent, uint64(g.GCMinHeadroom))
	}
}
