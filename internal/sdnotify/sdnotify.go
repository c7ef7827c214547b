// Package sdnotify speaks systemd's sd_notify protocol for a Type=notify
// unit, for both services: READY=1 with the first status, STATUS= when it
// changes, WATCHDOG=1 at half of WatchdogSec, STOPPING=1 at shutdown.
//
// Who feeds the watchdog matters: it must be the loop whose progress proves
// the service works (the collector's sampling loop, the aggregator's commit
// loop), never a timer that only proves the process is alive.
package sdnotify

import (
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends notifications; without NOTIFY_SOCKET it does nothing. Its
// methods are safe for concurrent use.
type Notifier struct {
	log     *slog.Logger
	clock   func() time.Time
	enabled bool
	every   time.Duration // 0: no watchdog

	mu         sync.Mutex
	ready      bool
	last       string
	lastPing   time.Time
	warnedSend bool
}

// New returns a notifier. interval is how often the caller's loop makes
// progress; a warning is logged when it is too long for the watchdog.
func New(log *slog.Logger, interval time.Duration) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log, clock: time.Now, enabled: os.Getenv("NOTIFY_SOCKET") != ""}
	if !n.enabled {
		return n
	}
	if wd, err := daemon.SdWatchdogEnabled(false); err == nil && wd > 0 {
		n.every = wd / 2
		if interval > n.every {
			log.Warn("loop interval is longer than half the systemd watchdog; raise WatchdogSec", "interval", interval, "watchdog", wd)
		}
	}
	return n
}

// Enabled reports whether systemd is listening.
func (n *Notifier) Enabled() bool { return n.enabled }

// Notify reports status (READY=1 the first time) and feeds the watchdog:
// for a loop that both reports and proves progress (the collector calls it
// after every sample).
func (n *Notifier) Notify(status string) { n.send(status, true) }

// Status reports status (READY=1 the first time) without feeding the
// watchdog.
func (n *Notifier) Status(status string) { n.send(status, false) }

// Watchdog feeds the watchdog (at most every half WatchdogSec); call it from
// the loop whose progress proves the service works.
func (n *Notifier) Watchdog() {
	if !n.enabled || n.every == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.ready { // no ping before READY: systemd ignores it anyway
		return
	}
	n.write(n.ping())
}

// ping returns the watchdog line when one is due. Called with mu held.
func (n *Notifier) ping() string {
	now := n.clock()
	if n.every > 0 && now.Sub(n.lastPing) >= n.every {
		n.lastPing = now
		return daemon.SdNotifyWatchdog + "\n"
	}
	return ""
}

func (n *Notifier) send(status string, feed bool) {
	if !n.enabled {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	msg := ""
	if !n.ready {
		msg = daemon.SdNotifyReady + "\n"
	}
	if status != n.last {
		msg += "STATUS=" + status + "\n"
	}
	if feed {
		msg += n.ping()
	}
	if n.write(msg) {
		n.ready, n.last = true, status
	}
}

// write sends msg; called with mu held.
func (n *Notifier) write(msg string) bool {
	if msg == "" {
		return true
	}
	if _, err := daemon.SdNotify(false, msg); err != nil {
		if !n.warnedSend {
			n.log.Warn("cannot notify systemd", "error", err.Error())
			n.warnedSend = true
		}
		return false
	}
	return true
}

// Stopping tells systemd the service is shutting down.
func (n *Notifier) Stopping() {
	if n.enabled {
		daemon.SdNotify(false, daemon.SdNotifyStopping)
	}
}
