//go:build !unix

package ascend

import "os/exec"

// killGroup leaves cmd's default cancellation (kill the process).
func killGroup(*exec.Cmd) {}
