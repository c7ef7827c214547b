package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFileRefusesOpenPermissions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o644, false}, {0o604, false}, {0o640, os.Getuid() == 0}} {
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		b, err := ReadFile(p)
		if tc.ok {
			if err != nil || string(b) != "s3cret\n" {
				t.Errorf("mode %04o: ReadFile = %q, %v; want the secret", tc.mode, b, err)
			}
			continue
		}
		if !errors.Is(err, ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: err = %v; want ErrTooOpen with the chmod 600 hint", tc.mode, err)
		}
	}
}
