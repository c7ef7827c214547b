//go:build !pprof

package main

// startProfiling does nothing unless the binary is built with -tags pprof.
func startProfiling() {}
