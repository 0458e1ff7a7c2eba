package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnsfront/dnsfront/internal/sdnotify"
	"github.com/dnsfront/dnsfront/internal/server"
)

// upgradeTimeout bounds the successor's start: it loads the configuration, certificates
// and staples as any start does.
const upgradeTimeout = 60 * time.Second

// upgradeAndHandOver runs a binary upgrade (SIGUSR2): it starts the successor with the
// listening sockets, and once the successor serves, stops reading them, drains and stops.
// It reports whether this process is done; on a failed upgrade it goes on serving, and
// stop is a SIGTERM or SIGINT that arrived meanwhile, for the caller to act on.
//
// Signals are read meanwhile: a stop signal during a successful upgrade is meant for the
// service, which the successor is now, so it is forwarded there (a stop must not turn
// into an upgrade). The watchdog is pinged too: the successor's start and the drain may
// take longer than its period.
func upgradeAndHandOver(srv *server.Server, log *slog.Logger, notify *sdnotify.Notifier,
	watchdog <-chan time.Time, sigs <-chan os.Signal) (done bool, stop os.Signal) {
	log.Info("upgrade: handing the listeners to a new process")
	type outcome struct {
		pid int
		err error
	}
	started := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), upgradeTimeout)
		defer cancel()
		pid, err := srv.Upgrade(ctx)
		started <- outcome{pid, err}
	}()
	pid := 0
	forward := func(sig os.Signal) {
		log.Info("upgrade: stop signal during the handover; forwarded to the successor", "signal", sig.String(), "successor", pid)
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			log.Error("upgrade: cannot forward the stop signal", "successor", pid, "err", err)
		}
	}
	var handedOver chan struct{} // closed once drained, after the successor serves
	for {
		select {
		case <-watchdog:
			notifyErr(log, notify.Watchdog())
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				log.Warn("reload refused: a binary upgrade is under way; reload the new process")
			case sig == syscall.SIGUSR2:
				log.Warn("upgrade refused: an upgrade is under way")
			case stop != nil:
			case pid != 0:
				stop = sig
				forward(sig)
			default:
				stop = sig
				log.Info("upgrade: stop signal during the upgrade; acted on once the successor serves or fails", "signal", sig.String())
			}
		case o := <-started:
			if o.err != nil {
				log.Error("upgrade failed; this process goes on serving", "err", o.err)
				return false, stop
			}
			pid = o.pid
			log.Info("upgrade: the successor serves; draining and stopping", "successor", pid)
			if stop != nil {
				forward(stop)
			}
			handedOver = make(chan struct{})
			go func() {
				defer close(handedOver)
				if err := srv.Handover(context.Background()); err != nil {
					log.Warn("upgrade: drain ended early", "err", err)
				}
			}()
		case <-handedOver:
			log.Info("stopped", "successor", pid)
			return true, nil
		}
	}
}

func newUpgradeCmd() *cobra.Command {
	var pidFile, adminURL, apiKey string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Replace a running dnsfront with the binary on disk, without dropping connections",
		Long: `Asks the running dnsfront to start the binary now on disk (same path, same arguments)
and hand it its listening sockets: the new process serves them, the old one stops reading
them, ends its connections gracefully within drain_timeout and exits. The command signals
SIGUSR2 through --pid-file (or posts to the admin API with --admin) and waits until the pid
file names the new process (with --admin alone it only asks). On failure the old process
goes on serving; its log says why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if adminURL != "" && !cmd.Flags().Changed("pid-file") {
				// Nothing to watch: the process's log and pid file tell the outcome.
				return apiPost(cmd, adminURL+"/api/v1/upgrade", apiKey)
			}
			old, err := readPID(pidFile)
			if err != nil {
				return err
			}
			if adminURL != "" {
				if err := apiPost(cmd, adminURL+"/api/v1/upgrade", apiKey); err != nil {
					return err
				}
			} else if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
				return fmt.Errorf("signal pid %d: %w", old, err)
			}
			deadline := time.Now().Add(timeout)
			for time.Now().Before(deadline) {
				if pid, err := readPID(pidFile); err == nil && pid != old {
					fmt.Fprintf(cmd.OutOrStdout(), "upgraded: pid %d serves; pid %d drains and exits\n", pid, old)
					return nil
				}
				if err := syscall.Kill(old, 0); errors.Is(err, syscall.ESRCH) {
					return fmt.Errorf("pid %d exited and no successor wrote %s", old, pidFile)
				}
				time.Sleep(100 * time.Millisecond)
			}
			return fmt.Errorf("no successor within %v: pid %d goes on serving (see its log)", timeout, old)
		},
	}
	cmd.Flags().StringVar(&pidFile, "pid-file", "/run/dnsfront.pid", "pid file of the running server")
	cmd.Flags().StringVar(&adminURL, "admin", "", "admin API base URL (e.g. http://127.0.0.1:10080) instead of a signal")
	cmd.Flags().StringVar(&apiKey, "api-key", "", "admin API key")
	cmd.Flags().DurationVar(&timeout, "timeout", upgradeTimeout+5*time.Second, "how long to wait for the new process")
	return cmd
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return pid, nil
}
