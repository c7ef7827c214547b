// Command redteam replays the hostile and misconfigured cases of issue 11
// against the real fleettop binary and prints PASS or FAIL for each: a
// broken or hostile node must not hurt the fleet.
//
//	go build -o /tmp/fleettop ./cmd/fleettop && go run ./tools/redteam --bin /tmp/fleettop
//
// scripts/redteam.sh does both. Exit status 1 when a case fails.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

const (
	collectorSecret = "redteam-collector-secret"
	viewerSecret    = "redteam-viewer-secret"
)

var (
	bin      = flag.String("bin", "", "fleettop binary to attack (required)")
	idleWait = flag.Duration("idle-wait", 150*time.Second, "how long an idle unauthenticated connection may stay open")
)

type result struct {
	name, verdict, detail string
}

func main() {
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "give --bin PATH to the fleettop binary")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "fleettop-redteam-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	tokens := filepath.Join(dir, "tokens")
	writeFile(tokens, fmt.Sprintf("collector fleet %s *\nviewer ops %s\n", collectorSecret, viewerSecret), 0o600)

	agg, err := startAggregator(dir, "data", tokens)
	if err != nil {
		fail(err)
	}
	defer agg.stop()

	// The slow case runs beside the others.
	idle := make(chan result, 1)
	go func() { idle <- idleUnauthenticated(agg.addr) }()

	var results []result
	add := func(r result) {
		results = append(results, r)
		fmt.Printf("%-4s %-28s %s\n", r.verdict, r.name, r.detail)
	}
	add(nonUTF8Hostname(agg))
	add(duplicateHosts(agg))
	add(leaseYear21000(agg))
	add(absurdMetrics(agg))
	add(seqJump(agg))
	add(duplicateNodeID(agg))
	add(manyNodeIDs(agg))
	add(csvFormula(dir, tokens))
	add(corruptLedger(dir, tokens))
	add(worldReadableToken(dir, agg.addr))
	add(plainWSRemote(dir))
	add(sharedDataDir(dir, agg.addr))
	add(<-idle)

	failed := 0
	for _, r := range results {
		if r.verdict != "PASS" {
			failed++
		}
	}
	fmt.Printf("\n%d of %d cases pass\n", len(results)-failed, len(results))
	if failed > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "redteam:", err)
	os.Exit(2)
}

func writeFile(p, body string, mode os.FileMode) {
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		fail(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		fail(err)
	}
}

func pass(name, format string, a ...any) result {
	return result{name, "PASS", fmt.Sprintf(format, a...)}
}

func failf(name, format string, a ...any) result {
	return result{name, "FAIL", fmt.Sprintf(format, a...)}
}

// --- the aggregator under attack

type aggregator struct {
	cmd     *exec.Cmd
	addr    string
	dataDir string
	log     string
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startAggregator(dir, name, tokens string, extra ...string) (*aggregator, error) {
	a := &aggregator{addr: freeAddr(), dataDir: filepath.Join(dir, name), log: filepath.Join(dir, name+".log")}
	lf, err := os.Create(a.log)
	if err != nil {
		return nil, err
	}
	args := append([]string{"aggregator", "--listen", a.addr, "--data-dir", a.dataDir, "--tokens", tokens}, extra...)
	a.cmd = exec.Command(*bin, args...)
	a.cmd.Stdout, a.cmd.Stderr = lf, lf
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	for range 150 {
		if resp, err := http.Get("http://" + a.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return a, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.stop()
	b, _ := os.ReadFile(a.log)
	return nil, fmt.Errorf("aggregator did not come up: %s", lastLine(string(b)))
}

func (a *aggregator) stop() {
	if a.cmd.Process != nil {
		a.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			a.cmd.Process.Kill()
			<-done
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func (a *aggregator) get(path string) (int, []byte) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// surfacesWhole checks /metrics and /api/v1/fleet: 200, no stack trace,
// a complete JSON body.
func (a *aggregator) surfacesWhole() (string, bool) {
	code, body := a.get("/metrics")
	if code != 200 || strings.Contains(string(body), "goroutine ") {
		return fmt.Sprintf("/metrics answered %d: %s", code, lastLine(string(body))), false
	}
	code, body = a.get("/api/v1/fleet")
	var v map[string]any
	if code != 200 || json.Unmarshal(body, &v) != nil {
		return fmt.Sprintf("/api/v1/fleet answered %d with %d bytes", code, len(body)), false
	}
	return "/metrics 200, /api/v1/fleet 200 and whole", true
}

// wholeAfterSettle judges a case that must leave the aggregator's surfaces
// whole once it has applied what was sent; onFail or onPass follows the
// finding in the verdict.
func wholeAfterSettle(a *aggregator, name, onFail, onPass string) result {
	settle()
	why, ok := a.surfacesWhole()
	if !ok {
		return failf(name, "%s%s", why, onFail)
	}
	return pass(name, "%s%s", why, onPass)
}

func (a *aggregator) metric(name string) float64 {
	_, body := a.get("/metrics")
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) {
			continue
		}
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// --- a hostile collector

type session struct {
	conn *websocket.Conn
	enc  *wire.Encoder
	dec  *wire.Decoder
}

func dial(addr, token string) (*session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/collect",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(wire.MaxFrameSize)
	return &session{conn: c, enc: wire.NewEncoder(), dec: wire.NewDecoder()}, nil
}

func (s *session) send(f wire.Frame) error {
	b, err := s.enc.AppendFrame(nil, f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageBinary, b)
}

// recv returns the next frame, or the close code when the aggregator
// closed the session.
func (s *session) recv(d time.Duration) (wire.Frame, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := s.conn.Read(ctx)
	if err != nil {
		return nil, int(websocket.CloseStatus(err)), err
	}
	f, err := s.dec.Decode(b)
	if c, ok := f.(*wire.Close); ok {
		return f, int(c.Code), nil
	}
	return f, 0, err
}

// hello introduces node; it returns the resume point, or the close code of
// a refusal.
func (s *session) hello(n fleet.Node) (resume uint64, code int, err error) {
	if err := s.send(&wire.Hello{Proto: wire.Version, Node: n}); err != nil {
		return 0, 0, err
	}
	for {
		f, code, err := s.recv(5 * time.Second)
		if err != nil || code != 0 {
			return 0, code, err
		}
		if w, ok := f.(*wire.Welcome); ok {
			return w.ResumeFrom, 0, nil
		}
	}
}

func (s *session) close() { s.conn.Close(websocket.StatusNormalClosure, "") }

func node(id string, gpus int) fleet.Node {
	n := fleet.Node{ID: id, Hostname: id, Region: "Singapore", Site: "sg-1", Provider: "acme", Jurisdiction: "SG",
		AgentVersion: "redteam", Labels: map[string]string{"team": "red"},
		Lease: fleet.Lease{ID: "l-" + id, PricePerGPUHour: fleet.Money{Micros: 2_000_000, Currency: "USD"}, Billing: fleet.BillPerSecond}}
	for i := range gpus {
		n.Devices = append(n.Devices, fleet.Device{Index: i, UUID: fmt.Sprintf("GPU-%s-%d", id, i), Vendor: fleet.VendorNVIDIA,
			Model: "NVIDIA H100 80GB HBM3", MemoryTotal: 80 << 30, PowerLimit: 700})
	}
	return n
}

func sample(seq uint64, gpus int, util, temp, power float64) fleet.Sample {
	s := fleet.Sample{Seq: seq, Time: time.Now()}
	for i := range gpus {
		var d fleet.DeviceSample
		d.Index = i
		d.Set(fleet.MetricUtil, util)
		d.Set(fleet.MetricTemp, temp)
		d.Set(fleet.MetricPower, power)
		s.Devices = append(s.Devices, d)
	}
	return s
}

// sendNode runs one node: Hello, then samples; it returns the session (open)
// or the refusal's close code.
func sendNode(a *aggregator, n fleet.Node, samples ...fleet.Sample) (*session, int, error) {
	s, err := dial(a.addr, collectorSecret)
	if err != nil {
		return nil, 0, err
	}
	_, code, err := s.hello(n)
	if err != nil || code != 0 {
		s.close()
		return nil, code, err
	}
	if len(samples) > 0 {
		if err := s.send(&wire.Samples{Samples: samples}); err != nil {
			s.close()
			return nil, 0, err
		}
	}
	return s, 0, nil
}

// settle waits for the aggregator to apply what was sent.
func settle() { time.Sleep(1500 * time.Millisecond) }

// --- the cases

func nonUTF8Hostname(a *aggregator) result {
	const name = "non-UTF-8 hostname"
	n := node("rt-utf8", 1)
	n.Hostname = "A\xff"
	s, code, err := sendNode(a, n, sample(1, 1, 0.5, 60, 300))
	if s != nil {
		defer s.close()
	}
	return wholeAfterSettle(a, name, fmt.Sprintf(" (hello: code %d, %v)", code, err), fmt.Sprintf("; hello refused with %d or repaired", code))
}

func duplicateHosts(a *aggregator) result {
	const name = "duplicate hostname+UUIDs"
	n1, n2 := node("rt-dup-a", 2), node("rt-dup-b", 2)
	n2.Hostname, n2.Devices = n1.Hostname, n1.Devices
	var open []*session
	for _, n := range []fleet.Node{n1, n2} {
		s, _, err := sendNode(a, n, sample(1, 2, 0.5, 60, 300))
		if err != nil {
			return failf(name, "node %s: %v", n.ID, err)
		}
		if s != nil {
			open = append(open, s)
		}
	}
	defer func() {
		for _, s := range open {
			s.close()
		}
	}()
	return wholeAfterSettle(a, name, "", "")
}

func leaseYear21000(a *aggregator) result {
	const name = "lease start year 21000"
	n := node("rt-lease", 1)
	n.Lease.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(18974, 0, 0)
	s, code, _ := sendNode(a, n, sample(1, 1, 0.5, 60, 300))
	if s != nil {
		defer s.close()
	}
	return wholeAfterSettle(a, name, "", fmt.Sprintf("; hello close code %d (0: accepted with the lease repaired)", code))
}

func absurdMetrics(a *aggregator) result {
	const name = "absurd metrics"
	s, code, err := sendNode(a, node("rt-absurd", 2), sample(1, 2, 1e9, -500, 1e11), sample(2, 2, -3, 1e6, -1))
	if s != nil {
		defer s.close()
	}
	if err != nil {
		return failf(name, "send: %v (code %d)", err, code)
	}
	settle()
	code2, body := a.get("/api/v1/fleet")
	var f struct {
		Totals struct {
			Util float64 `json:"util"`
		} `json:"totals"`
	}
	if code2 != 200 || json.Unmarshal(body, &f) != nil {
		return failf(name, "/api/v1/fleet answered %d", code2)
	}
	if f.Totals.Util < 0 || f.Totals.Util > 1 {
		return failf(name, "fleet utilisation %v", f.Totals.Util)
	}
	return pass(name, "fleet utilisation %.3f (0..1); repaired values counted: %v", f.Totals.Util, a.metric("fleettop_ingest_repaired_total"))
}

// onLiveNode runs a case against node id, live: a session for a one-GPU
// node that has sent one healthy record, closed when run returns. When
// the aggregator refuses that session, the case fails without running.
func onLiveNode(a *aggregator, name, id string, run func(s *session) result) result {
	s, code, err := sendNode(a, node(id, 1), sample(1, 1, 0.5, 60, 300))
	if err == nil && s == nil {
		err = fmt.Errorf("refused (close code %d)", code)
	}
	if err != nil {
		return failf(name, "first record: %v", err)
	}
	defer s.close()
	return run(s)
}

func seqJump(a *aggregator) result {
	const name = "sequence jump to 2^64-1"
	return onLiveNode(a, name, "rt-seq", func(s *session) result {
		_ = s.send(&wire.Samples{Samples: []fleet.Sample{sample(math.MaxUint64, 1, 0.5, 60, 300)}})
		settle()
		gaps := a.metric("fleettop_ingest_seq_gaps_total")
		// The genuine next record must still be accepted, on a new session.
		s2, code, err := sendNode(a, node("rt-seq", 1))
		resume := "refused"
		if s2 != nil {
			defer s2.close()
			resume = "accepted"
		}
		if gaps > 1e9 {
			return failf(name, "fleettop_ingest_seq_gaps_total reads %g", gaps)
		}
		return pass(name, "gaps counter %g; the node reconnects: %s (code %d, %v)", gaps, resume, code, err)
	})
}

func duplicateNodeID(a *aggregator) result {
	const name = "duplicate node id"
	return onLiveNode(a, name, "rt-twin", func(s1 *session) result {
		// The holder keeps answering pings: read in the background.
		go func() {
			for {
				if _, _, err := s1.recv(time.Minute); err != nil {
					return
				}
			}
		}()
		settle()
		s2, code, _ := sendNode(a, node("rt-twin", 1))
		if s2 != nil {
			defer s2.close()
			return failf(name, "a second live session for one node id was accepted")
		}
		if code != int(wire.CloseNodeInUse) {
			return failf(name, "second session closed with %d, want %d", code, wire.CloseNodeInUse)
		}
		return pass(name, "second session refused with %d; fleettop_node_conflicts_total %g", code, a.metric("fleettop_node_conflicts_total"))
	})
}

func manyNodeIDs(a *aggregator) result {
	const name = "many node ids, one token"
	// The limit is per token; the case uses a second aggregator with a
	// small limit so it runs in seconds.
	help, _ := exec.Command(*bin, "aggregator", "--help").CombinedOutput()
	flagName := ""
	for _, line := range strings.Split(string(help), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "--") && strings.Contains(f[0], "node") && strings.Contains(f[0], "token") {
			flagName = f[0]
		}
	}
	if flagName == "" {
		return failf(name, "the aggregator has no per-token node limit flag")
	}
	dir := filepath.Dir(a.dataDir)
	b, err := startAggregator(dir, "limit", filepath.Join(dir, "tokens"), flagName, "20")
	if err != nil {
		return failf(name, "%v", err)
	}
	defer b.stop()
	refused := 0
	var open []*session
	for i := range 30 {
		s, code, _ := sendNode(b, node(fmt.Sprintf("rt-many-%d", i), 1))
		if s != nil {
			open = append(open, s)
		} else if code == int(wire.CloseLimit) {
			refused++
		}
	}
	for _, s := range open {
		s.close()
	}
	if len(open) > 20 || refused == 0 {
		return failf(name, "%s 20: %d node ids accepted, %d refused", flagName, len(open), refused)
	}
	return pass(name, "%s 20: %d accepted, %d refused with %d", flagName, len(open), refused, wire.CloseLimit)
}

func idleUnauthenticated(addr string) result {
	const name = "idle unauthenticated conns"
	// A keep-alive connection that was answered 401, then says nothing.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return failf(name, "%v", err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/fleet HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return failf(name, "read: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	c.SetReadDeadline(start.Add(*idleWait))
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return failf(name, "a %d connection stayed open %s after the answer", resp.StatusCode, *idleWait)
	}
	return pass(name, "the server closed an idle %d connection after %s", resp.StatusCode, time.Since(start).Round(time.Second))
}

func csvFormula(dir, tokens string) result {
	const name = "CSV formula in a team"
	a, err := startAggregator(dir, "csv", tokens)
	if err != nil {
		return failf(name, "%v", err)
	}
	formula := `=HYPERLINK("http://evil.example","x")`
	n := node("rt-csv", 1)
	n.Labels = map[string]string{"team": formula}
	s, code, _ := sendNode(a, n, sample(1, 1, 0.5, 60, 300), sample(2, 1, 0.5, 60, 300))
	if s != nil {
		settle()
		s.close()
	}
	a.stop() // the last commit folds the rollups and accrues the ledger
	out, err := exec.Command(*bin, "report", "--data-dir", a.dataDir, "--by", "team", "--format", "csv", "--since", "1d").Output()
	if err != nil {
		return failf(name, "report: %v", err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil {
		return failf(name, "report is not CSV: %v", err)
	}
	for _, r := range recs[1:] {
		if len(r) > 0 && r[0] != "" && strings.ContainsRune("=+-@\t\r", rune(r[0][0])) {
			return failf(name, "cell %q would run as a formula", r[0])
		}
		if r[0] == "'"+formula {
			return pass(name, "written as %q: text kept, not a formula", r[0])
		}
	}
	return pass(name, "no live formula in %d rows (hello close code %d: the label was refused or repaired at the edge)", len(recs)-1, code)
}

func corruptLedger(dir, tokens string) result {
	const name = "corrupt ledger page"
	a, err := startAggregator(dir, "corrupt", tokens)
	if err != nil {
		return failf(name, "%v", err)
	}
	s, _, _ := sendNode(a, node("rt-corrupt", 8), sample(1, 8, 0.5, 60, 300))
	if s != nil {
		settle()
		s.close()
	}
	a.stop()
	db := filepath.Join(a.dataDir, "fleettop.db")
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		return failf(name, "%v", err)
	}
	fi, _ := f.Stat()
	const page = 16384
	junk := []byte(strings.Repeat("\xa5", page))
	// Every page but the header page: whatever the layout, the tables' roots are hit.
	for off := int64(page); off < fi.Size(); off += page {
		f.WriteAt(junk, off)
	}
	f.Close()
	os.Remove(db + "-wal")
	os.Remove(db + "-shm")
	cmd := exec.Command(*bin, "aggregator", "--listen", freeAddr(), "--data-dir", a.dataDir, "--tokens", tokens)
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		if cmd.ProcessState.Success() {
			return failf(name, "the aggregator exited 0 on a corrupt database")
		}
		return pass(name, "refused to start: %s", lastLine(string(out)))
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		return failf(name, "the aggregator started on a corrupt database")
	}
}

func worldReadableToken(dir, addr string) result {
	const name = "world-readable token file"
	open := filepath.Join(dir, "tokens.open")
	writeFile(open, fmt.Sprintf("collector fleet %s *\n", collectorSecret), 0o644)
	out, err := exec.Command(*bin, "aggregator", "--listen", freeAddr(), "--data-dir", filepath.Join(dir, "open"), "--tokens", open).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "chmod 600") {
		return failf(name, "aggregator accepted a 0644 token file: %s", lastLine(string(out)))
	}
	ctok := filepath.Join(dir, "collector.token.open")
	writeFile(ctok, collectorSecret+"\n", 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out2, err := exec.CommandContext(ctx, *bin, "collector", "--mock", "nvidia", "--aggregator", "ws://"+addr,
		"--token-file", ctok, "--data-dir", filepath.Join(dir, "cstate-open")).CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "chmod 600") {
		return failf(name, "collector accepted a 0644 token file: %s", lastLine(string(out2)))
	}
	return pass(name, "aggregator and collector refuse 0644 with the chmod 600 hint")
}

func plainWSRemote(dir string) result {
	const name = "ws:// to a non-loopback host"
	tok := filepath.Join(dir, "collector.token")
	writeFile(tok, collectorSecret+"\n", 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, *bin, "collector", "--mock", "nvidia", "--aggregator", "ws://192.0.2.10:7070",
		"--token-file", tok, "--data-dir", filepath.Join(dir, "cstate-ws")).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "--insecure") {
		return failf(name, "collector did not refuse: %s", lastLine(string(out)))
	}
	return pass(name, "refused: %s", lastLine(string(out)))
}

func sharedDataDir(dir, addr string) result {
	const name = "two collectors, one data dir"
	tok := filepath.Join(dir, "collector.token")
	writeFile(tok, collectorSecret+"\n", 0o600)
	state := filepath.Join(dir, "cstate-shared")
	first := exec.Command(*bin, "collector", "--mock", "nvidia", "--aggregator", "ws://"+addr, "--token-file", tok, "--data-dir", state)
	if err := first.Start(); err != nil {
		return failf(name, "%v", err)
	}
	defer func() { first.Process.Signal(os.Interrupt); first.Wait() }()
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, *bin, "collector", "--mock", "nvidia", "--seed", "2", "--aggregator", "ws://"+addr,
		"--token-file", tok, "--data-dir", state).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		return failf(name, "the second collector ran on the same data dir: %s", lastLine(string(out)))
	}
	return pass(name, "second collector refused: %s", lastLine(string(out)))
}
