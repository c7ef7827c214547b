// Package exetrim keeps a long-running process's share of its own
// executable close to the code it runs.
//
// fleettop is one 32 MB binary and the collector runs a small part of it.
// On Linux 6.x the page cache holds a freshly written binary in large
// folios (up to 2 MiB), and a fault maps the whole folio around the page
// (a PMD-sized one with a single entry): measured on kernel 6.18, a
// collector on 8 simulated GPUs had 21 MB of the binary resident, all of
// its text and read-only data. Trim, called once startup is over, marks the
// binary's read-only segments MADV_NOHUGEPAGE and MADV_RANDOM (no PMD
// mappings, no read-ahead), drops what is mapped so far (MADV_DONTNEED), and
// lets the page cache drop the folios nobody maps any more
// (POSIX_FADV_DONTNEED). What the process goes on running is read back a
// page at a time. Measured on that collector (docs/BENCHMARKS.md): its RSS
// fell 26 → 10–12 MB, the binary's share 21 → 5–6 MB; right after a fresh
// build whose folios an aggregator run from the same file still maps (the
// collector check), 26 → 23–25 MB, as a folio another process maps stays
// whole. What is dropped is memory given back to the jobs the node is
// rented for. The price is a few thousand minor faults and 4 KiB reads
// after the call, and no read-ahead for the binary if the kernel later
// evicts its pages.
//
// Only mappings of the executable that are private, not writable and hold
// no anonymous (copy-on-write) pages are dropped, so nothing the process
// wrote can be lost: a refault reads the same bytes from the file.
package exetrim

// Stats says what Trim did.
type Stats struct {
	Mappings int   // read-only mappings of the executable dropped
	Bytes    int64 // their resident bytes before the drop
}
