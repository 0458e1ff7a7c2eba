package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ).
// Linux fixes USER_HZ at 100 on every architecture Go supports, whatever the
// kernel's internal HZ, so a constant replaces a cgo call to
// sysconf(_SC_CLK_TCK). The resolution is therefore 10 ms of CPU time: runs
// should last a second or more for the per-operation figures to mean much.
const clockTicks = 100

// ProcCPU returns the user plus system CPU time consumed so far by process
// pid, all threads included, read from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: server CPU: %w", err)
	}
	return parseProcStat(path, b)
}

func parseProcStat(path string, b []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may itself contain
	// spaces and parentheses: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: %s: no command name", path)
	}
	fields := bytes.Fields(b[i+1:])
	// After the name come state (field 3) ... utime (14) and stime (15).
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(fields) <= stimeIdx {
		return 0, fmt.Errorf("bench: %s: %d fields after the command name, want at least %d", path, len(fields), stimeIdx+1)
	}
	ut, err := strconv.ParseUint(string(fields[utimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: %s: utime: %w", path, err)
	}
	st, err := strconv.ParseUint(string(fields[stimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: %s: stime: %w", path, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// selfCPU returns the CPU time (user plus system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter brackets a run: the server's CPU (when a PID is given) and ours.
type cpuMeter struct {
	pid         int
	server0     time.Duration
	client0     time.Duration
	serverErr   error
	serverDelta time.Duration
	clientDelta time.Duration
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, client0: selfCPU()}
	if pid > 0 {
		m.server0, m.serverErr = ProcCPU(pid)
	}
	return m
}

func (m *cpuMeter) stop() {
	m.clientDelta = selfCPU() - m.client0
	if m.pid > 0 && m.serverErr == nil {
		var s time.Duration
		s, m.serverErr = ProcCPU(m.pid)
		m.serverDelta = s - m.server0
	}
}

// fill writes the CPU figures for ops successful operations into r.
func (m *cpuMeter) fill(r *Results, ops uint64) {
	r.ClientCPUSeconds = m.clientDelta.Seconds()
	if ops > 0 {
		r.ClientCPUPerOpUS = float64(m.clientDelta.Microseconds()) / float64(ops)
	}
	if m.pid <= 0 {
		return
	}
	if m.serverErr != nil {
		r.ServerCPUError = m.serverErr.Error()
		return
	}
	r.ServerCPUSeconds = m.serverDelta.Seconds()
	if ops > 0 {
		r.ServerCPUPerOpUS = float64(m.serverDelta.Microseconds()) / float64(ops)
	}
	if m.serverDelta > 0 {
		r.RatePerServerCore = float64(ops) / m.serverDelta.Seconds()
	}
}
