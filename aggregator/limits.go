package aggregator

import (
	"sync"
	"time"
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
