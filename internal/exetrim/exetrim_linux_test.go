//go:build linux && (amd64 || arm64)

package exetrim

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

const smaps = `00400000-00411000 r--p 00000000 fd:01 42 /usr/bin/fleettop
Rss:                  64 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
00411000-00ddc000 r-xp 00011000 fd:01 42 /usr/bin/fleettop
Rss:                9968 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
018b8000-018b9000 r--p 014b7000 fd:01 42 /usr/bin/fleettop
Rss:                   4 kB
Anonymous:             4 kB
VmFlags: rd mr mw me ac
018b9000-019ae000 rw-p 014b8000 fd:01 42 /usr/bin/fleettop
Rss:                 796 kB
Anonymous:           120 kB
VmFlags: rd wr mr mw me ac
7f0000000000-7f0000100000 r-xp 00000000 fd:01 7 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 900 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                2000 kB
Anonymous:          2000 kB
VmFlags: rd wr mr mw me ac
`

func TestReadOnlyMappingsKeepsOnlyUnwrittenExecutableMappings(t *testing.T) {
	got, err := readOnlyMappings(bufio.NewScanner(strings.NewReader(smaps)), "/usr/bin/fleettop")
	if err != nil {
		t.Fatal(err)
	}
	want := []vma{
		{start: 0x400000, end: 0x411000, rss: 64 << 10},
		{start: 0x411000, end: 0xddc000, rss: 9968 << 10},
	}
	if len(got) != len(want) {
		t.Fatalf("mappings %+v, want %+v (the relocated read-only page, the data segment and libc must be left alone)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadOnlyMappingsRejectsABadRange(t *testing.T) {
	bad := "00411000-zz r-xp 00011000 fd:01 42 /usr/bin/fleettop\nRss: 4 kB\n"
	if _, err := readOnlyMappings(bufio.NewScanner(strings.NewReader(bad)), "/usr/bin/fleettop"); err == nil {
		t.Fatal("a malformed range was accepted")
	}
}

// TestTrimThisProcess trims the test binary's own mappings and checks that
// the kernel took the advice and the code still runs.
func TestTrimThisProcess(t *testing.T) {
	st, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	if st.Mappings == 0 {
		t.Fatal("no read-only mapping of the test binary was trimmed")
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var inText bool
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 6 && !strings.HasSuffix(f[0], ":"):
			inText = f[1] == "r-xp" && strings.Join(f[5:], " ") == exe
		case inText && len(f) > 0 && f[0] == "VmFlags:":
			flags := " " + strings.Join(f[1:], " ") + " "
			if !strings.Contains(flags, " nh ") || !strings.Contains(flags, " rr ") {
				t.Errorf("text mapping flags %q, want nh (no huge pages) and rr (random reads)", flags)
			}
			return
		}
	}
	t.Fatal("no text mapping of the test binary in smaps")
}
