package aggregator

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// logLimiter lets one log line through per interval (default a minute) and
// counts what it held back, so a hostile or broken peer cannot flood the log.
type logLimiter struct {
	mu       sync.Mutex
	every    time.Duration
	next     time.Time
	held     int
	lastHeld int
}

// allow reports whether a line may be logged at now.
func (l *logLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	every := l.every
	if every <= 0 {
		every = time.Minute
	}
	if now.Before(l.next) {
		l.held++
		return false
	}
	l.next = now.Add(every)
	l.lastHeld, l.held = l.held, 0
	return true
}

// suppressed returns how many lines were held back before the last allowed one.
func (l *logLimiter) suppressed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastHeld
}

// conflictBook remembers node id conflicts for the alert list: one alert
// per node, open while conflicts keep coming, closed once none came for a
// while. Bounded: closed alerts older than a day are forgotten, and at
// most maxConflictAlerts are kept.
type conflictBook struct {
	mu sync.Mutex
	m  map[string]*conflictEntry
}

type conflictEntry struct {
	alert fleet.Alert
	last  time.Time
}

const maxConflictAlerts = 1024

func (b *conflictBook) note(node, holder, refused string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*conflictEntry{}
	}
	e := b.m[node]
	if e == nil || !e.alert.End.IsZero() {
		if e == nil && len(b.m) >= maxConflictAlerts {
			return // counted and logged; the alert list stays bounded
		}
		e = &conflictEntry{alert: fleet.Alert{ID: "conflict/" + node, Kind: fleet.EventConflict, Severity: fleet.SevWarning,
			Node: node, Device: -1, Start: now}}
		b.m[node] = e
	}
	e.last = now
	e.alert.Message = fmt.Sprintf("node id %s is claimed by two collectors: %s holds it, %s was refused; give each collector its own node_id",
		node, holder, refused)
}

// alerts returns the conflict alerts at now; one with no conflict for quiet
// is closed at its last conflict.
func (b *conflictBook) alerts(now time.Time, quiet time.Duration) []fleet.Alert {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []fleet.Alert
	for id, e := range b.m {
		if e.alert.End.IsZero() && now.Sub(e.last) > quiet {
			e.alert.End = e.last
		}
		if !e.alert.End.IsZero() && now.Sub(e.alert.End) > 24*time.Hour {
			delete(b.m, id)
			continue
		}
		out = append(out, e.alert)
	}
	slices.SortFunc(out, func(a, b fleet.Alert) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// capListener closes connections beyond its capacity as soon as they are
// accepted (counted as rejected{conn_limit}, logged at most once a minute),
// so held connections cannot exhaust memory or file descriptors.
type capListener struct {
	net.Listener
	s   *Server
	sem chan struct{}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &capConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
		}
		// Counted before the close, so a client that sees the close can
		// also see the count.
		l.s.m.rejected.WithLabelValues(rejectConnLimit).Inc()
		c.Close()
		if l.s.connLog.allow(l.s.clock()) {
			l.s.log.Warn("connection limit reached; closing new connections", "limit", cap(l.sem),
				"remote", c.RemoteAddr().String(), "closed_since_last_report", l.s.connLog.suppressed())
		}
	}
}

type capConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
