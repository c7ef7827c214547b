package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A corrupt page is found at Open, which refuses with a clear error, instead
// of a store that opens normally and then fails every commit of the fleet.
func TestOpenRefusesCorruptDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleettop.db")
	clk := newClock()
	st := openT(t, path, Options{Clock: clk.Now})
	n := testNode("n1", 8)
	for i := 1; i <= 120; i++ {
		clk.recordTick(st, n, i, 8, 0.5)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := st.DB().QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = 'rollup_minute'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := st.DB().QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	sound, err := Open(path, Options{Clock: clk.Now})
	if err != nil {
		t.Fatalf("a sound database: %v", err)
	}
	if err := sound.Close(); err != nil {
		t.Fatal(err)
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, pageSize)
	for i := range junk {
		junk[i] = 0xA5
	}
	if _, err := f.WriteAt(junk, (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err = Open(path, Options{Clock: clk.Now})
	if err == nil {
		st.Close()
		t.Fatal("a database with a corrupt page opened")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	t.Log(err)
}
