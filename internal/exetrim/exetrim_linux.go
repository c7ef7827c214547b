//go:build linux && (amd64 || arm64)

package exetrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Trim drops this process's mappings of its executable's read-only
// segments, and the page cache's copy of what it no longer maps (see the
// package doc). It is safe to call at any time, from any goroutine, more
// than once.
func Trim() (Stats, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Stats{}, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	vmas, err := readOnlyMappings(bufio.NewScanner(f), exe)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	for _, v := range vmas {
		for _, a := range advice {
			if err := madvise(v.start, v.end-v.start, a.advice); err != nil {
				return st, fmt.Errorf("madvise(%s) %#x-%#x: %w", a.name, v.start, v.end, err)
			}
		}
		st.Mappings++
		st.Bytes += v.rss
	}
	// The folios nobody maps any more leave the page cache; read again a
	// page at a time (MADV_RANDOM: no read-ahead), they come back small.
	// Folios another process maps (a TUI or aggregator run from the same
	// file) stay.
	if st.Mappings > 0 {
		f, err := os.Open("/proc/self/exe") // the file we run, even if replaced since
		if err != nil {
			return st, err
		}
		defer f.Close()
		// A binary written moments ago (a fresh build or upgrade) may
		// still be dirty in the page cache, and dirty folios are not
		// dropped: write it back first. Best effort: where it fails
		// (read-only media, a file system without fsync) the file is not
		// dirty, and the mappings are already trimmed.
		_ = syscall.Fdatasync(int(f.Fd()))
		if _, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, posixFadvDontneed, 0, 0); e != 0 {
			return st, fmt.Errorf("fadvise(POSIX_FADV_DONTNEED) %s: %w", exe, e)
		}
	}
	return st, nil
}

// posixFadvDontneed is POSIX_FADV_DONTNEED on amd64 and arm64.
const posixFadvDontneed = 4

// advice is what Trim asks of each mapping, in order: no PMD mappings, no
// read-ahead, then drop what is mapped.
var advice = []struct {
	name   string
	advice int
}{
	{"MADV_NOHUGEPAGE", syscall.MADV_NOHUGEPAGE},
	{"MADV_RANDOM", syscall.MADV_RANDOM},
	{"MADV_DONTNEED", syscall.MADV_DONTNEED},
}

type vma struct {
	start, end uintptr
	rss        int64
}

// readOnlyMappings reads smaps and returns the mappings of path that are
// private, not writable and hold no anonymous pages.
func readOnlyMappings(sc *bufio.Scanner, path string) ([]vma, error) {
	var out []vma
	var cur *vma
	var keep bool
	flush := func() {
		if cur != nil && keep {
			out = append(out, *cur)
		}
		cur, keep = nil, false
	}
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's header
			flush()
			if len(fields) < 6 || strings.Join(fields[5:], " ") != path || len(fields[1]) < 4 {
				continue
			}
			perms := fields[1]
			if perms[1] == 'w' || perms[3] != 'p' {
				continue
			}
			lo, hi, ok := strings.Cut(fields[0], "-")
			if !ok {
				return nil, fmt.Errorf("smaps: bad range %q", fields[0])
			}
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || end <= start {
				return nil, fmt.Errorf("smaps: bad range %q", fields[0])
			}
			cur, keep = &vma{start: uintptr(start), end: uintptr(end)}, true
			continue
		}
		if cur == nil || len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue // VmFlags and the like
		}
		switch fields[0] {
		case "Rss:":
			cur.rss = kb << 10
		case "Anonymous:":
			if kb != 0 {
				keep = false // written pages: dropping them would lose the writes
			}
		}
	}
	flush()
	return out, sc.Err()
}

func madvise(addr, n uintptr, advice int) error {
	if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, addr, n, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}
