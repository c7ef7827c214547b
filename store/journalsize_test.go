package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/mock"
	"github.com/fleettop/fleettop/wire"
)

// TestJournalSizeRealistic writes the journal of a realistic stream: the
// mock's fleet of 60 nodes (its noise and jobs) sampled at 1 Hz
// with a few milliseconds of timer jitter, through the wire's encoder and
// decoder (so values are quantised as the aggregator receives them), one
// Commit per second of data. It reports, and bounds, the journal's bytes
// per GPU-sample after a minute of warm-up: what each Commit writes into
// SQLite's WAL between folds.
func TestJournalSizeRealistic(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a fleet for minutes of data")
	}
	const nodes, warm, secs = 60, 60, 240
	ctx := context.Background()
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	sc, err := mock.New(mock.Config{Seed: 1, Start: start, Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	now := start
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: func() time.Time { return now }})
	defer st.Close()
	type conn struct {
		info *fleet.Node
		smp  *mock.AgentSampler
		enc  *wire.Encoder
		dec  *wire.Decoder
	}
	conns := make([]conn, len(sc.Nodes))
	for i, n := range sc.Nodes {
		src := mock.NewSource(n, mock.SourceOptions{Now: func() time.Time { return now }})
		if _, err := src.Start(ctx); err != nil {
			t.Fatal(err)
		}
		conns[i] = conn{info: &n.Info, smp: mock.NewAgentSampler(src), enc: wire.NewEncoder(), dec: wire.NewDecoder()}
	}
	seqs := map[string]uint64{}
	var s fleet.Sample
	journal, v0, gpuSamples := 0, 0, 0
	for k := range secs {
		now = start.Add(time.Duration(k) * time.Second)
		for i := range conns {
			c := &conns[i]
			jitter := time.Duration((i*7919+k*104729)%5000) * time.Microsecond
			if err := c.smp.Sample(ctx, &s, uint64(k+1), now.Add(jitter)); err != nil {
				t.Fatal(err)
			}
			f, err := c.enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{s}})
			if err != nil {
				t.Fatal(err)
			}
			fr, err := c.dec.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			for j := range fr.(*wire.Samples).Samples {
				d := &fr.(*wire.Samples).Samples[j]
				st.Record(c.info, 0, d)
				seqs[c.info.ID] = d.Seq
				if k >= warm {
					gpuSamples += len(d.Devices)
				}
			}
		}
		now = now.Add(900 * time.Millisecond) // the samples arrived
		if err := st.Commit(ctx, seqs); err != nil {
			t.Fatal(err)
		}
		if k >= warm {
			journal += len(st.journalBuf)
			v0 += lenV0(t, st.journalBuf)
		}
	}
	perSample := float64(journal) / float64(gpuSamples)
	t.Logf("%d nodes, %d GPU-samples: journal %.2f B/GPU-sample (the first format: %.2f)",
		nodes, gpuSamples, perSample, float64(v0)/float64(gpuSamples))
	if perSample > 35 {
		t.Errorf("journal %.2f B/GPU-sample, want ≤ 35", perSample)
	}
}

// lenV0 returns the length of entry in the journal's first format.
func lenV0(t *testing.T, entry []byte) int {
	t.Helper()
	p := decodeEntry(t, entry)
	n := 0
	for id, pn := range p.nodes {
		n += len(appendNodeV0(nil, &journalNode{id: id, seq: pn.seq, firstMs: pn.firstMs, lastMs: pn.lastMs, buckets: pn.buckets}))
	}
	return n
}
