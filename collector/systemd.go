package collector

import (
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Systemd speaks the sd_notify protocol for a Type=notify unit: READY=1 with
// the first status, STATUS= when it changes, and WATCHDOG=1 at half of
// WatchdogSec. Its Notify method is an AgentConfig.Notify: the agent calls it
// after every sample, so a stuck sampling loop stops the watchdog pings and
// systemd restarts the collector.
type Systemd struct {
	log        *slog.Logger
	clock      func() time.Time
	enabled    bool
	ready      bool
	last       string
	every      time.Duration // 0: no watchdog
	lastPing   time.Time
	warnedSend bool
}

// NewSystemd returns a notifier; without NOTIFY_SOCKET it does nothing.
func NewSystemd(log *slog.Logger, interval time.Duration) *Systemd {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Systemd{log: log, clock: time.Now, enabled: os.Getenv("NOTIFY_SOCKET") != ""}
	if !s.enabled {
		return s
	}
	if wd, err := daemon.SdWatchdogEnabled(false); err == nil && wd > 0 {
		s.every = wd / 2
		if interval > s.every {
			log.Warn("sampling interval is longer than half the systemd watchdog; raise WatchdogSec", "interval", interval, "watchdog", wd)
		}
	}
	return s
}

// Enabled reports whether systemd is listening.
func (s *Systemd) Enabled() bool { return s.enabled }

// Notify reports status; see Systemd.
func (s *Systemd) Notify(status string) {
	if !s.enabled {
		return
	}
	msg := ""
	if !s.ready {
		msg = daemon.SdNotifyReady + "\n"
	}
	if status != s.last {
		msg += "STATUS=" + status + "\n"
	}
	now := s.clock()
	if s.every > 0 && now.Sub(s.lastPing) >= s.every {
		msg += daemon.SdNotifyWatchdog + "\n"
		s.lastPing = now
	}
	if msg == "" {
		return
	}
	if _, err := daemon.SdNotify(false, msg); err != nil {
		if !s.warnedSend {
			s.log.Warn("cannot notify systemd", "error", err.Error())
			s.warnedSend = true
		}
		return
	}
	s.ready, s.last = true, status
}

// Stopping tells systemd the collector is shutting down.
func (s *Systemd) Stopping() {
	if s.enabled {
		daemon.SdNotify(false, daemon.SdNotifyStopping)
	}
}
