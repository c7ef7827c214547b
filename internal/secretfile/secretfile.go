// Package secretfile reads files that hold secrets (token files) the way ssh
// reads private keys: a file other users can read is refused, with the
// chmod that fixes it.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrTooOpen is wrapped by the error of a file that others can read.
var ErrTooOpen = errors.New("permissions too open")

// Check reports whether fi, the file at path, keeps its secret: no
// permission for others, and none for the group, except a root-owned file
// its group may read (the packaged layout: /etc/fleettop/tokens is
// root:fleettop 0640 for the fleettop service user).
func Check(path string, fi fs.FileInfo) error {
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if perm&0o037 == 0 && ownedByRoot(fi) {
		return nil
	}
	return fmt.Errorf("%s: %w: mode %04o lets other users read the secret; run: chmod 600 %s", path, ErrTooOpen, perm, path)
}

// Open opens the secret file at path after checking its permissions on
// the opened file (no race with a chmod in between).
func Open(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := Check(path, fi); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile reads the secret file at path; see Check.
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}
