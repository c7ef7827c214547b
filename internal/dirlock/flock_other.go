//go:build !unix

package dirlock

import "os"

func lockFile(*os.File) error { return nil } // no advisory locks here
