// Command loadgen measures the real `fleettop aggregator` under load: it
// builds (or takes) the binary, starts it on loopback with a fresh data
// directory and token file, opens one websocket per simulated 8-GPU node,
// sends one pre-encoded Samples frame per node per second, reads the acks,
// and reports the aggregator's CPU time per GPU-sample and resident memory
// per GPU (beyond a baseline taken with no nodes), with its own /metrics
// counters.
//
//	go run ./tools/loadgen --gpus 10000,100000 --duration 30s
//
// Frames are encoded once per template stream before the run: after each
// connection's lead-in (two records encoded live at the Welcome's resume
// point: the template's last values, then its first), a record's sequence
// and time deltas are always +1 and +1000 ms and the codec's predictions
// (previous increments, previous interval) are the same at every wrap, so
// the same bytes serve every connection that follows the template. The
// generator's own CPU stays small next to the aggregator's.
//
// --stream mock (the default) takes the templates from `fleettop mock`'s
// simulation (its noise, process lists sent when they change, its fault
// events), sampled with a few milliseconds of timer jitter as a collector
// would; --stream smooth takes wiretest's smoother drift.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

type options struct {
	bin       string
	gpus      []int
	perNode   int
	duration  time.Duration
	warmup    time.Duration
	templates int
	stream    string
	viewers   int
	records   int
	dialers   int
	senders   int
	spread    bool
	keep      bool
	perf      string
	gctrace   bool
	leaseAge  time.Duration
}

func main() {
	var o options
	var gpus string
	flag.StringVar(&o.bin, "bin", "", "fleettop binary to measure (default: go build ./cmd/fleettop into a temporary directory)")
	flag.StringVar(&gpus, "gpus", "10000", "comma-separated fleet sizes in GPUs; each runs against a fresh aggregator")
	flag.IntVar(&o.perNode, "gpus-per-node", 8, "GPUs per simulated node (one websocket each)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured interval")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Second, "time after the last node connected before measuring")
	flag.IntVar(&o.templates, "templates", 16, "distinct pre-encoded node streams")
	flag.IntVar(&o.viewers, "viewers", 0, "viewers on /v1/watch during the run (each counts the bytes it receives)")
	flag.StringVar(&o.stream, "stream", "mock", "what the nodes send: mock (fleettop mock's simulation and noise) or smooth (wiretest's drift)")
	flag.IntVar(&o.records, "records", 600, "records per template stream before it repeats (keep above the run's length in seconds)")
	flag.IntVar(&o.dialers, "dialers", 32, "concurrent connection attempts while ramping up")
	flag.IntVar(&o.senders, "senders", 32, "sending goroutines")
	flag.BoolVar(&o.spread, "spread", false, "spread each node's frame evenly over the second (collectors before they sampled on whole seconds) instead of sending every frame on the second, as collectors do")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, database)")
	flag.StringVar(&o.perf, "perf", "", "record a CPU profile of the aggregator over the measured interval with perf(1) into this file")
	flag.DurationVar(&o.leaseAge, "lease-age", time.Hour, "how long ago the simulated leases started (the store accrues each lease's ledger from its start)")
	flag.BoolVar(&o.gctrace, "gctrace", false, "run the aggregator with GODEBUG=gctrace=1 and print its last GC line (live heap)")
	flag.Parse()
	for _, s := range strings.Split(gpus, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < o.perNode {
			fmt.Fprintf(os.Stderr, "loadgen: --gpus wants whole numbers of at least %d, got %q\n", o.perNode, s)
			os.Exit(2)
		}
		o.gpus = append(o.gpus, n)
	}
	if o.perNode < 1 || o.perNode > wire.MaxDevices || o.records < 2 || o.templates < 1 {
		fmt.Fprintln(os.Stderr, "loadgen: --gpus-per-node must be 1..64, --records at least 2, --templates at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "fleettop-loadgen-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("# temporary directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.bin == "" {
		o.bin = filepath.Join(dir, "fleettop")
		fmt.Println("# building ./cmd/fleettop")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "github.com/fleettop/fleettop/cmd/fleettop")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build fleettop (or pass --bin): %w", err)
		}
	}
	tmpls, err := buildTemplates(o)
	if err != nil {
		return err
	}
	fmt.Printf("# %d template streams of %d records, %d GPUs each: %.1f B/gpu-sample on the wire\n",
		len(tmpls), o.records, o.perNode, tmpls[0].bytesPerGPUSample)
	for i, n := range o.gpus {
		if err := measure(ctx, o, filepath.Join(dir, fmt.Sprint("run", i)), tmpls, n); err != nil {
			return fmt.Errorf("%d GPUs: %w", n, err)
		}
	}
	return nil
}

// template is one node stream, pre-encoded. lead is sent live per
// connection at the resume point (the last record's values, then the
// first's); frames follow it and then repeat forever: the last frame brings
// the values back to the first record's, with the same increments as the
// lead's second record.
type template struct {
	node              fleet.Node
	lead              [2]fleet.Sample
	frames            [][]byte
	gpus              int
	bytesPerGPUSample float64
}

// streamRecords returns o.records one-second records of template k and
// its node.
func streamRecords(o options, k int) (fleet.Node, []fleet.Sample, error) {
	t0 := time.Unix(1_700_000_000, 0)
	if o.stream == "mock" {
		return mockRecords(o, k, t0)
	}
	st := wiretest.NewStream(uint64(1000+k), "template", o.perNode)
	recs := make([]fleet.Sample, o.records)
	for i := range recs {
		recs[i] = st.Next(t0.Add(time.Duration(i) * time.Second))
	}
	return st.Node(), recs, nil
}

func buildTemplates(o options) ([]*template, error) {
	var out []*template
	for k := range o.templates {
		node, recs, err := streamRecords(o, k)
		if err != nil {
			return nil, err
		}
		n := len(recs)
		last, first := recs[n-1], recs[0]
		last.Seq, last.Time = 1, first.Time.Add(-time.Second)
		first.Seq = 2
		last.ProcsSet, last.Procs, last.Events = false, nil, nil
		first.ProcsSet = true
		first.Events = nil
		t := &template{node: node, lead: [2]fleet.Sample{last, first}, gpus: len(first.Devices)}
		enc := wire.NewEncoder()
		if _, err := enc.AppendFrame(nil, &wire.Samples{Samples: t.lead[:]}); err != nil {
			return nil, fmt.Errorf("encode template: %w", err)
		}
		total := 0
		for i := 1; i <= n; i++ {
			r := recs[i%n] // at i == n: the wrap-around record, the first's values again
			r.Seq, r.Time = first.Seq+uint64(i), first.Time.Add(time.Duration(i)*time.Second)
			if i == n {
				r.ProcsSet, r.Procs, r.Events = false, nil, nil
			}
			b, err := enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{r}})
			if err != nil {
				return nil, fmt.Errorf("encode template: %w", err)
			}
			t.frames = append(t.frames, b)
			total += len(b)
		}
		t.bytesPerGPUSample = float64(total) / float64(n*t.gpus)
		out = append(out, t)
	}
	return out, nil
}

// aggregator is the measured process.
type aggregator struct {
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:PORT
	viewer string
	logf   string
	done   chan error
}

func startAggregator(ctx context.Context, o options, dir string) (*aggregator, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	collector, viewer := secret(), secret()
	tokens := fmt.Sprintf("# loadgen\ncollector loadgen %s load-*\nviewer loadgen-viewer %s\n", collector, viewer)
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte(tokens), 0o600); err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	a := &aggregator{url: fmt.Sprintf("http://127.0.0.1:%d", port), viewer: viewer, logf: filepath.Join(dir, "aggregator.log"), done: make(chan error, 1)}
	logf, err := os.Create(a.logf)
	if err != nil {
		return nil, "", err
	}
	a.cmd = exec.Command(o.bin, "aggregator", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--data-dir", filepath.Join(dir, "data"), "--tokens", filepath.Join(dir, "tokens"),
		"--max-nodes-per-token", "1000000") // every simulated node shares one token
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if o.gctrace {
		a.cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	}
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start aggregator: %w", err)
	}
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(a.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a, collector, nil
			}
		}
		select {
		case err := <-a.done:
			return nil, "", fmt.Errorf("aggregator exited (%v): %s", err, tail(a.logf))
		case <-ctx.Done():
			a.stop()
			return nil, "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, "", fmt.Errorf("aggregator not healthy after 20s: %s", tail(a.logf))
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (a *aggregator) stop() error {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			return fmt.Errorf("aggregator exit: %w: %s", err, tail(a.logf))
		}
		return nil
	case <-time.After(120 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("aggregator did not exit within 120s of SIGTERM (killed): %s", tail(a.logf))
	}
}

type snapshot struct {
	at   time.Time
	cpu  time.Duration // aggregator utime+stime
	rss  int64         // aggregator VmRSS, bytes
	self time.Duration // loadgen's own CPU
	sent uint64        // GPU-samples the generator sent
}

func (a *aggregator) snapshot(ctx context.Context, sent uint64) (snapshot, error) {
	s := snapshot{at: time.Now(), sent: sent}
	var err error
	pid := a.cmd.Process.Pid
	if s.cpu, err = procCPU(pid); err != nil {
		return s, err
	}
	if s.rss, err = procRSS(pid); err != nil {
		return s, err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s, nil
}

func measure(ctx context.Context, o options, dir string, tmpls []*template, gpus int) error {
	per := 0
	for _, t := range tmpls {
		per += t.gpus
	}
	nodes := gpus * len(tmpls) / per
	fmt.Printf("\n## %d GPUs: %d nodes × %.1f GPUs at 1 Hz (%s stream), warm-up %s, measured %s\n", nodes*per/len(tmpls), nodes, float64(per)/float64(len(tmpls)), o.stream, o.warmup, o.duration)
	a, collectorSecret, err := startAggregator(ctx, o, dir)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = a.stop()
		}
	}()
	time.Sleep(2 * time.Second) // let the idle aggregator settle
	base, err := a.snapshot(ctx, 0)
	if err != nil {
		return err
	}
	fmt.Printf("baseline (no nodes): RSS %.1f MiB\n", mib(base.rss))

	g := &generator{o: o, wsURL: "ws" + strings.TrimPrefix(a.url, "http") + "/v1/collect", secret: collectorSecret,
		leaseStart: time.Now().Add(-o.leaseAge).Truncate(time.Second)}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	if err := g.connect(runCtx, tmpls, nodes); err != nil {
		return err
	}
	fmt.Printf("connected %d nodes in %s (%d failed)\n", g.connected.Load(), time.Since(t0).Round(time.Millisecond), g.dialFailed.Load())
	var probes []*node
	var lat []probeLat
	for _, nd := range g.nodes {
		if o.viewers > 0 && nd != nil && len(probes) < probeNodes {
			nd.probe = newProbe(&lat)
			probes = append(probes, nd)
		}
	}
	// Viewers connect before the nodes send: dialled one after another
	// into a 100k-GPU stream, 55 viewers took minutes on the 2-core VM
	// (loadgen and the aggregator both CPU-starved).
	var vw *viewers
	if o.viewers > 0 {
		t0 := time.Now()
		if vw, err = startViewers(runCtx, a.url, a.viewer, o.viewers); err != nil {
			return err
		}
		for _, nd := range probes {
			if err := nd.probe.watch(runCtx, a.url, a.viewer, nd.id); err != nil {
				return err
			}
		}
		fmt.Printf("connected %d viewers and %d probe viewers in %s\n", o.viewers, len(probes), time.Since(t0).Round(time.Millisecond))
	}
	var wg sync.WaitGroup
	sendCtx, cancelSend := context.WithCancel(runCtx)
	defer cancelSend()
	g.startSenders(sendCtx, runCtx, &wg)
	sleep(ctx, o.warmup)
	var vb0 int64
	if vw != nil {
		vb0 = vw.max()
	}
	s0, err := a.snapshot(ctx, g.sentGPU.Load())
	if err != nil {
		return err
	}
	var perf *exec.Cmd
	if o.perf != "" {
		perf = exec.CommandContext(ctx, "perf", "record", "-F", "499", "-g", "-o", o.perf,
			"-p", strconv.Itoa(a.cmd.Process.Pid), "--", "sleep", strconv.Itoa(int(o.duration.Seconds())))
		perf.Stderr = os.Stderr
		if err := perf.Start(); err != nil {
			return fmt.Errorf("perf: %w", err)
		}
	}
	sleep(ctx, o.duration)
	s1, err := a.snapshot(ctx, g.sentGPU.Load())
	if vw != nil {
		fmt.Printf("viewers: %d of %d connected at the end; the busiest received %.1f KiB/s\n",
			vw.live.Load(), o.viewers, float64(vw.max()-vb0)/1024/s1.at.Sub(s0.at).Seconds())
	}
	if len(probes) > 0 {
		all, ingest, wait, delivery := latSummary(&lat, s0.at, s1.at)
		fmt.Printf("latency, sample written by the collector → change received by a viewer (%d probe nodes, a viewer more each): %d samples, %s (target p99 ≤ 200 ms)\n",
			len(probes), all.n, all)
		fmt.Printf("  written → applied by the aggregator (ingest): %s\n", ingest)
		fmt.Printf("  applied → its publication began (the hub's spacing and queue): %s\n", wait)
		fmt.Printf("  publication began → received (the hub's work, the viewer's goroutine and socket, loadgen's read): %s\n", delivery)
	}
	if perf != nil {
		_ = perf.Wait()
	}
	if err != nil {
		return fmt.Errorf("measure the aggregator after the interval: %w", err)
	}
	lagging := g.ackLag()
	st, _ := procStatus(a.cmd.Process.Pid)
	// Stop sending and let the last frames land, so the aggregator's
	// counters can be compared with what was sent.
	cancelSend()
	wg.Wait()
	time.Sleep(2 * time.Second)
	// /metrics is read only now: a scrape renders every GPU's exporter
	// series, and its garbage would otherwise count as ingest memory.
	scrapeStart := time.Now()
	metrics, err := a.scrape(ctx)
	if err != nil {
		return err
	}
	scrapeTook := time.Since(scrapeStart)
	afterScrape, _ := procRSS(a.cmd.Process.Pid)
	g.closeAll()
	cancel()
	stopped = true
	stopStart := time.Now()
	stopErr := a.stop()
	stopTook := time.Since(stopStart)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	report(o, gpus, base, s0, s1, g, lagging, metrics)
	fmt.Printf("  RSS split: anonymous %.1f MiB, file-backed %.1f MiB, shared memory %.1f MiB\n", mib(st["RssAnon"]), mib(st["RssFile"]), mib(st["RssShmem"]))
	fmt.Printf("after the senders stopped: sent %d GPU-samples in all, the aggregator counts %.0f ingested\n", g.sentGPU.Load(), metrics["fleettop_ingest_gpu_samples_total"])
	fmt.Printf("one /metrics scrape (all exporter series) took %s; RSS after it %.1f MiB\n", scrapeTook.Round(time.Millisecond), mib(afterScrape))
	if o.gctrace {
		fmt.Println("last GC before exit:", lastGC(a.logf))
	}
	if stopErr != nil {
		return stopErr
	}
	fmt.Printf("aggregator exited 0 on SIGTERM after %s\n", stopTook.Round(time.Millisecond))
	return nil
}

func report(o options, gpus int, base, s0, s1 snapshot, g *generator, lagging int, m map[string]float64) {
	secs := s1.at.Sub(s0.at).Seconds()
	sent := float64(s1.sent - s0.sent)
	cpu := (s1.cpu - s0.cpu).Seconds()
	fmt.Printf("measured %.1f s: sent %.0f GPU-samples/s (target %d/s)\n", secs, sent/secs, gpus)
	if sent > 0 {
		fmt.Printf("aggregator CPU: %.2f cores, %.2f µs per GPU-sample (target ≤ 5)\n", cpu/secs, cpu*1e6/sent)
	}
	fmt.Printf("loadgen CPU: %.2f cores\n", (s1.self-s0.self).Seconds()/secs)
	per := float64(s1.rss-base.rss) / float64(gpus)
	fmt.Printf("aggregator RSS: %.1f MiB (baseline %.1f MiB): %.0f B per GPU beyond the baseline\n", mib(s1.rss), mib(base.rss), per)
	fmt.Printf("  history: %d B per GPU (aggregator/history.go: 60 one-second and 170 five-second points × 6 B, one 1,408 B size class); beyond it %.0f B per GPU\n", historyRingBytes, per-historyRingBytes)
	fmt.Printf("aggregator /metrics: gpu_samples_total %.0f, records_total %.0f, bytes_total %.0f, seq_gaps_total %.0f, duplicates_total %.0f, collectors_connected %.0f, commit_errors_total %.0f\n",
		m["fleettop_ingest_gpu_samples_total"], m["fleettop_ingest_records_total"], m["fleettop_ingest_bytes_total"],
		m["fleettop_ingest_seq_gaps_total"], m["fleettop_ingest_duplicates_total"], m["fleettop_collectors_connected"], m["fleettop_commit_errors_total"])
	var rejects []string
	for k, v := range m {
		if strings.HasPrefix(k, "fleettop_ingest_rejected_total") && v > 0 {
			rejects = append(rejects, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "fleettop_ingest_rejected_total"), v))
		}
	}
	if len(rejects) == 0 {
		rejects = []string{"none"}
	}
	fmt.Printf("  rejected: %s\n", strings.Join(rejects, ", "))
	fmt.Printf("loadgen: %d sessions lost, %d closed by the aggregator, %d nodes more than %d s behind on acks (the ack interval plus 5 s) at the end of the measured interval\n",
		g.lost.Load(), g.closedByPeer.Load(), lagging, ackLagRecords)
}

// historyRingBytes is what aggregator/history.go allocates per device: 230
// points of 6 bytes plus counters, one 1,408 B size class (its
// TestHistoryCoarsePast checks the size; change both together).
const historyRingBytes = 1408

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// generator drives the simulated nodes.
type generator struct {
	o          options
	wsURL      string
	secret     string
	leaseStart time.Time
	nodes      []*node

	connected, dialFailed atomic.Int64
	lost, closedByPeer    atomic.Int64
	sentGPU               atomic.Uint64
}

type node struct {
	id    string
	t     *template
	ws    *websocket.Conn
	next  int    // index of the next template frame
	seq   uint64 // last sequence sent
	acked atomic.Uint64
	dead  atomic.Bool
	first []byte // the live-encoded lead-in (two records), sent on the first tick
	probe *probe // non-nil: note when each record is written (the latency probe's node)
}

func (g *generator) connect(ctx context.Context, tmpls []*template, n int) error {
	g.nodes = make([]*node, n)
	work := make(chan int)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range g.o.dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				nd := &node{id: fmt.Sprintf("load-%06d", i), t: tmpls[i%len(tmpls)]}
				if err := g.dial(ctx, nd); err != nil {
					g.dialFailed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				g.nodes[i] = nd
				g.connected.Add(1)
			}
		}()
	}
	for i := range n {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil && g.connected.Load() == 0 {
		return err
	} else if err != nil {
		fmt.Println("first dial error:", err)
	}
	return ctx.Err()
}

// dial opens a node's session: Hello, Welcome, and its first record
// encoded at the resume point.
func (g *generator) dial(ctx context.Context, nd *node) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, g.wsURL, &websocket.DialOptions{
		HTTPHeader:      http.Header{"Authorization": {"Bearer " + g.secret}},
		CompressionMode: websocket.CompressionDisabled,
	})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("dial %s: %w", nd.id, err)
	}
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	hello := &wire.Hello{Proto: wire.Version, Node: nd.t.node}
	hello.Node.ID, hello.Node.Hostname = nd.id, nd.id+".load"
	hello.Node.Lease.Start = g.leaseStart
	if e := hello.Node.Lease.End; !e.IsZero() && !e.After(g.leaseStart) {
		hello.Node.Lease.End = time.Time{} // the template's lease ended before the run's started
	}
	b, err := enc.AppendFrame(nil, hello)
	if err == nil {
		err = ws.Write(dctx, websocket.MessageBinary, b)
	}
	var welcome *wire.Welcome
	if err == nil {
		var msg []byte
		if _, msg, err = ws.Read(dctx); err == nil {
			var f wire.Frame
			if f, err = dec.Decode(msg); err == nil {
				var ok bool
				if welcome, ok = f.(*wire.Welcome); !ok {
					err = fmt.Errorf("expected welcome, got %T %+v", f, f)
				}
			}
		}
	}
	if err != nil {
		ws.Close(websocket.StatusInternalError, "")
		return fmt.Errorf("handshake %s: %w", nd.id, err)
	}
	lead := nd.t.lead
	now := time.Now()
	lead[0].Seq, lead[0].Time = welcome.ResumeFrom, now.Add(-time.Second)
	lead[1].Seq, lead[1].Time = welcome.ResumeFrom+1, now
	if nd.first, err = enc.AppendFrame(nil, &wire.Samples{Samples: lead[:]}); err != nil {
		return err
	}
	nd.ws, nd.seq = ws, welcome.ResumeFrom-1
	nd.acked.Store(welcome.ResumeFrom - 1)
	go g.readAcks(nd, dec)
	return nil
}

// readAcks reads the aggregator's frames for one node until the session ends.
func (g *generator) readAcks(nd *node, dec *wire.Decoder) {
	for {
		_, msg, err := nd.ws.Read(context.Background())
		if err != nil {
			if !nd.dead.Swap(true) && websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				g.lost.Add(1)
			}
			return
		}
		f, err := dec.Decode(msg)
		if err != nil {
			continue
		}
		switch f := f.(type) {
		case *wire.Ack:
			nd.acked.Store(f.Seq)
		case *wire.Close:
			g.closedByPeer.Add(1)
		}
	}
}

// startSenders paces every node at one frame a second until ctx ends: on
// every whole second, as collectors sample (collector.Agent), or spread evenly
// over it with --spread. Writes use writeCtx, so stopping the senders never
// cuts a frame.
func (g *generator) startSenders(ctx, writeCtx context.Context, wg *sync.WaitGroup) {
	for w := range g.o.senders {
		var mine []*node
		for i := w; i < len(g.nodes); i += g.o.senders {
			if g.nodes[i] != nil {
				mine = append(mine, g.nodes[i])
			}
		}
		if len(mine) == 0 {
			continue
		}
		wg.Add(1)
		if !g.o.spread {
			go func() {
				defer wg.Done()
				for {
					now := time.Now()
					sleep(ctx, now.Truncate(time.Second).Add(time.Second).Sub(now))
					for _, nd := range mine {
						if ctx.Err() != nil {
							return
						}
						g.send(writeCtx, nd)
					}
				}
			}()
			continue
		}
		go func() {
			defer wg.Done()
			start := time.Now().Add(time.Duration(w) * time.Second / time.Duration(g.o.senders) / time.Duration(len(mine)))
			for round := 0; ; round++ {
				for i, nd := range mine {
					at := start.Add(time.Duration(round)*time.Second + time.Duration(i)*time.Second/time.Duration(len(mine)))
					if d := time.Until(at); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
					if ctx.Err() != nil {
						return
					}
					g.send(writeCtx, nd)
				}
			}
		}()
	}
}

func (g *generator) send(ctx context.Context, nd *node) {
	if nd.dead.Load() {
		return
	}
	b, recs := nd.first, 2
	if b == nil {
		b, recs = nd.t.frames[nd.next], 1
		nd.next = (nd.next + 1) % len(nd.t.frames)
	}
	if err := nd.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		if ctx.Err() == nil && !nd.dead.Swap(true) {
			g.lost.Add(1)
		}
		return
	}
	nd.first = nil
	nd.seq += uint64(recs)
	if nd.probe != nil {
		nd.probe.sent(nd.seq, time.Now())
	}
	g.sentGPU.Add(uint64(recs * nd.t.gpus))
}

// ackLagRecords is how far behind what was sent a node's acks may trail
// before ackLag counts it: the aggregator's default ack interval (15 s, one
// record a second) plus 5 s.
const ackLagRecords = 20

// ackLag counts live nodes whose acks trail what was sent by more than
// ackLagRecords.
func (g *generator) ackLag() int {
	n := 0
	for _, nd := range g.nodes {
		if nd != nil && !nd.dead.Load() && nd.seq > nd.acked.Load()+ackLagRecords {
			n++
		}
	}
	return n
}

func (g *generator) closeAll() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, nd := range g.nodes {
		if nd == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nd.dead.Store(true)
			_ = nd.ws.Close(websocket.StatusNormalClosure, "loadgen done")
		}()
	}
	wg.Wait()
}

// scrape reads the aggregator's /metrics into name{labels} → value.
func (a *aggregator) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line, in clock ticks (USER_HZ, 100).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const userHZ = 100
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procRSS returns a process's resident set size from /proc/PID/status.
func procRSS(pid int) (int64, error) {
	m, err := procStatus(pid)
	if err != nil {
		return 0, err
	}
	rss, ok := m["VmRSS"]
	if !ok {
		return 0, errors.New("no VmRSS in /proc/PID/status")
	}
	return rss, nil
}

// procStatus returns the kB fields of /proc/PID/status, in bytes.
func procStatus(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		v, isKB := strings.CutSuffix(strings.TrimSpace(v), " kB")
		if !ok || !isKB {
			continue
		}
		if kb, err := strconv.ParseInt(v, 10, 64); err == nil {
			m[k] = kb << 10
		}
	}
	return m, sc.Err()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func secret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lastGC returns the last gctrace line the aggregator logged before it
// began shutting down.
func lastGC(path string) string {
	b, _ := os.ReadFile(path)
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "shutting down") {
			break
		}
		if strings.HasPrefix(l, "gc ") {
			last = l
		}
	}
	return last
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
