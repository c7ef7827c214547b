package nvml

import (
	"log/slog"
	"time"
)

// Options tune the source. The zero value is usable. A build without cgo
// takes them too, and uses none.
type Options struct {
	// LibraryPath is the NVML shared library NewSystem loads ("" = the
	// system's libnvidia-ml.so.1).
	LibraryPath string
	Logger      *slog.Logger
	// Deadline bounds how long Collect waits for the device workers; a device
	// still busy after it is reported absent this tick. Default 500 ms.
	Deadline time.Duration
	// EventWait is the timeout of each NVML event-set wait (the XID reader
	// checks for Close between waits). Default 1 s.
	EventWait time.Duration
	// Clock stamps events. Default time.Now.
	Clock func() time.Time
}
