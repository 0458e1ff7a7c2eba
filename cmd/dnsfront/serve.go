package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/sdnotify"
	"github.com/dnsfront/dnsfront/internal/server"
	"github.com/dnsfront/dnsfront/internal/upgrade"
	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newServeCmd() *cobra.Command {
	var cfgPath, pidFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run dnsfront in the foreground (SIGHUP reloads, SIGUSR2 upgrades the binary, SIGTERM/SIGINT drain and stop)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cfgPath, pidFile)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "/etc/dnsfront/dnsfront.yaml", "configuration file")
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "write the process ID to this file")
	return cmd
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(cfgPath, pidFile string) error {
	// Catch signals first: a SIGTERM that arrives while the server is starting must stop
	// it cleanly once it has started, not kill it with the default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2)
	// A process started by an upgrade serves the sockets of the one it replaces.
	heir, err := upgrade.Inherited()
	if err != nil {
		return err
	}
	// The level comes from the file; a file that does not load is reported by Start.
	level := "info"
	if cfg, err := config.Load(cfgPath); err == nil {
		level = cfg.General.LogLevel
	}
	log := newLogger(level)
	raiseFileLimit(log)
	notify := sdnotify.New()
	if heir != nil && os.Getenv("WATCHDOG_USEC") != "" {
		// systemd pings the main process; this one becomes it (MAINPID below).
		_ = os.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	var watchdog <-chan time.Time
	if every, err := sdnotify.WatchdogInterval(); err != nil {
		log.Warn("systemd watchdog off", "err", err)
	} else if every > 0 {
		// Pinged from this loop, not from a goroutine of its own: a reload or a signal
		// handler that hangs stops the pings, and systemd restarts the process.
		tick := time.NewTicker(every)
		defer tick.Stop()
		watchdog = tick.C
	}
	var opts server.StartOptions
	if heir != nil {
		opts.Sockets, opts.Serving = heir.Sockets, heir.Serving
	}
	srv, err := server.StartWith(cfgPath, log, opts)
	if err != nil {
		if heir != nil {
			heir.Fail()
		}
		return err
	}
	if cfg, err := config.Load(cfgPath); err == nil {
		for _, w := range cipherWarnings(cfg) {
			log.Warn(w)
		}
	}
	writePID := func() {
		if pidFile == "" {
			return
		}
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Warn("cannot write pid file", "file", pidFile, "err", err)
		}
	}
	if heir != nil {
		// The predecessor stops reading the sockets once told; systemd follows the new
		// main process (NotifyAccess=all in the unit). Neither is told when the
		// predecessor gave up waiting: the sockets are its own again.
		err := heir.Ready(func() {
			writePID()
			notifyErr(log, notify.Notify("MAINPID="+strconv.Itoa(os.Getpid()), "READY=1", "STATUS=serving "+cfgPath+" (upgraded)"))
		})
		if errors.Is(err, upgrade.ErrAborted) {
			log.Error("upgrade: the predecessor gave up waiting and goes on serving; handing the listeners back and stopping")
			if herr := srv.Handover(context.Background()); herr != nil {
				log.Warn("upgrade: handing back ended early", "err", herr)
			}
			return err
		}
		if err != nil {
			log.Warn("upgrade: cannot tell the predecessor that this process serves", "err", err)
		}
	} else {
		writePID()
		notifyErr(log, notify.Ready("serving "+cfgPath))
	}
	// Logged once the pid file names this process: whoever waits for the line may read it.
	log.Info("dnsfront started", "version", server.Version, "config", cfgPath, "pid", os.Getpid())
	if pidFile != "" {
		defer removePIDFile(pidFile)
	}
	for {
		select {
		case <-watchdog:
			notifyErr(log, notify.Watchdog())
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				notifyErr(log, notify.Reloading())
				// Logged by Reload; the old state keeps serving on error.
				if err := srv.Reload(); err != nil {
					notifyErr(log, notify.Ready("reload failed, previous configuration serving: "+err.Error()))
				} else {
					notifyErr(log, notify.Ready("serving "+cfgPath))
				}
				continue
			}
			if sig == syscall.SIGUSR2 {
				done, stop := upgradeAndHandOver(srv, log, notify, watchdog, sigs)
				if done {
					return nil
				}
				if stop == nil {
					continue
				}
				sig = stop
			}
			log.Info("stopping: draining queries in flight", "signal", sig.String())
			notifyErr(log, notify.Stopping())
			err := srv.Shutdown(context.Background())
			log.Info("stopped")
			return err
		case <-srv.Engine().Done():
			return fmt.Errorf("engine stopped unexpectedly")
		}
	}
}

// notifyErr logs a notification the service manager did not get: systemd then times
// the start or reload out, and the log says why.
func notifyErr(log *slog.Logger, err error) {
	if err != nil {
		log.Warn("cannot notify the service manager", "err", err)
	}
}

// cipherWarnings names, per TLS bind, the configured TLS 1.2 suites that TLS audits
// flag (CBC, or no ECDHE). They still apply: an explicit list is the operator's choice.
func cipherWarnings(cfg *config.Config) []string {
	var out []string
	for i, b := range cfg.Binds {
		if b.TLS == nil {
			continue
		}
		ids, err := tlsframe.ParseCipherSuites(b.TLS.Ciphers)
		if err != nil {
			continue // an error of its own, reported by validation
		}
		if v, err := tlsframe.ParseVersion(b.TLS.MinimumVersion); err == nil && v < tls.VersionTLS12 && len(ids) == 0 {
			out = append(out, fmt.Sprintf("%s: binds[%d].tls.minimum_version: %s, but the default TLS 1.2 suites are AEAD only, which TLS 1.0 and 1.1 cannot use; name CBC suites in ciphers for those clients",
				cfg.Path, i, b.TLS.MinimumVersion))
		}
		if weak := tlsframe.WeakCipherSuites(ids); len(weak) > 0 {
			out = append(out, fmt.Sprintf("%s: binds[%d].tls.ciphers: %s offered on TLS 1.2: CBC or non-ECDHE suites, which TLS audits flag; leave ciphers unset for ECDHE with AES-GCM and ChaCha20-Poly1305 only",
				cfg.Path, i, strings.Join(weak, ", ")))
		}
	}
	return out
}

// raiseFileLimit lifts the soft descriptor limit to the hard one: every client stream is
// a descriptor, and gnet's accept loop gives up on EMFILE.
func raiseFileLimit(log *slog.Logger) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err == nil && r.Cur < r.Max {
		r.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
			log.Warn("cannot raise the file descriptor limit", "err", err)
		}
	}
}

func newCheckConfigCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate a configuration file without starting",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := server.Check(cfgPath); err != nil {
				return err
			}
			if cfg, err := config.Load(cfgPath); err == nil {
				for _, w := range cipherWarnings(cfg) {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration OK\n", cfgPath)
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "/etc/dnsfront/dnsfront.yaml", "configuration file")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "dnsfront", server.Version)
		},
	}
}

func newReloadCmd() *cobra.Command {
	var pidFile, adminURL, apiKey string
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Ask a running dnsfront to reload (SIGHUP through --pid-file, or the admin API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if adminURL != "" {
				return apiPost(cmd, adminURL+"/api/v1/reload", apiKey)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				return err
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return fmt.Errorf("%s: %w", pidFile, err)
			}
			return syscall.Kill(pid, syscall.SIGHUP)
		},
	}
	cmd.Flags().StringVar(&pidFile, "pid-file", "/run/dnsfront.pid", "pid file of the running server")
	cmd.Flags().StringVar(&adminURL, "admin", "", "admin API base URL (e.g. http://127.0.0.1:10080) instead of a signal")
	cmd.Flags().StringVar(&apiKey, "api-key", "", "admin API key")
	return cmd
}

// removePIDFile removes the pid file unless a successor wrote its own ID into it.
func removePIDFile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		return
	}
	_ = os.Remove(path)
}
