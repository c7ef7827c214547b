//go:build pprof

package main

// Built only with -tags pprof, for profiling the binary under the load tools:
// FLEETTOP_PPROF=127.0.0.1:6060 serves net/http/pprof on that address.

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
)

// startProfiling serves net/http/pprof on $FLEETTOP_PPROF when it is set.
func startProfiling() {
	if addr := os.Getenv("FLEETTOP_PPROF"); addr != "" {
		go func() {
			if err := http.ListenAndServe(addr, nil); err != nil {
				slog.Error("pprof", "err", err)
			}
		}()
	}
}
