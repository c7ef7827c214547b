package remotewrite

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	promexp "github.com/fleettop/fleettop/exporters/prometheus"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
)

// tinyNode is one NVIDIA node whose GPUs report utilisation util.
type tinyNode struct {
	node fleet.Node
	util float64
}

func (n *tinyNode) ID() string            { return n.node.ID }
func (n *tinyNode) Identity() *fleet.Node { return &n.node }
func (n *tinyNode) Generation() uint64    { return 1 }
func (n *tinyNode) State() string         { return "online" }
func (n *tinyNode) Burn() fleet.Money     { return fleet.Money{} }
func (n *tinyNode) NumDevices() int       { return len(n.node.Devices) }
func (n *tinyNode) Device(i int) (*fleet.Device, *fleet.DeviceSample) {
	s := &fleet.DeviceSample{Index: i}
	s.Set(fleet.MetricUtil, n.util)
	return &n.node.Devices[i], s
}
func (n *tinyNode) EachEvent(func(*fleet.Event)) {}

func newTiny(gpus int) *tinyNode {
	n := &tinyNode{node: fleet.Node{ID: "rw-1", Hostname: "gpu-rw-1", Region: "Singapore", Provider: "acme", Jurisdiction: "SG"}}
	for i := range gpus {
		n.node.Devices = append(n.node.Devices, fleet.Device{Index: i, UUID: fmt.Sprintf("GPU-%04d", i), Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100"})
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promServer runs a real Prometheus with the remote_write receiver.
type promServer struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

func (p *promServer) start() {
	p.t.Helper()
	cfg := filepath.Join(p.dir, "prometheus.yml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		p.t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(p.dir, "log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(p.bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(p.dir, "data"),
		"--web.listen-address="+p.addr, "--web.enable-remote-write-receiver")
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	testutil.WaitWithin(p.t, 60*time.Second, "prometheus ready", func() bool {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (p *promServer) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// samples returns every sample of query's series over the last hour at t,
// by the series' gpu label.
func (p *promServer) samples(query string, at time.Time) map[string][]float64 {
	p.t.Helper()
	u := "http://" + p.addr + "/api/v1/query?" + url.Values{"query": {query + "[1h]"}, "time": {strconv.FormatInt(at.Unix(), 10)}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		p.t.Fatal(err)
	}
	out := map[string][]float64{}
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			f, _ := strconv.ParseFloat(v[1].(string), 64)
			out[s.Metric["gpu"]] = append(out[s.Metric["gpu"]], f)
		}
	}
	return out
}

// TestPrometheusOutage sends to a real Prometheus, kills it, keeps
// sending into the buffer, restarts it, and checks that every sample of
// every series arrived, in order, exactly once.
func TestPrometheusOutage(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not on PATH (apt-get install prometheus)")
	}
	dir := t.TempDir()
	p := &promServer{t: t, bin: bin, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	p.start()
	defer p.kill()

	node := newTiny(4)
	exp := promexp.NewExporter(func(fn func(promexp.NodeReader)) { fn(node) }, nil)
	cfg := Config{Name: "prom", URL: "http://" + p.addr + "/api/v1/write", Interval: time.Hour, Timeout: 5 * time.Second, Queue: DefaultQueue()}
	cfg.Queue.MaxSamplesPerSend = 3 // several requests per interval
	cfg.Queue.MaxBackoff = 200 * time.Millisecond
	m := NewMetrics(nil)
	w, err := New(cfg, func(ts time.Time, n int, emit func([]byte, int)) int { return exp.WriteRequests(ts, n, nil, emit) },
		filepath.Join(dir, "rw"), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	defer w.Close(t.Context())

	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	tick := 0
	send := func(n int) {
		for range n {
			node.util = float64(tick) / 4 // exact in binary: exported as 25 × tick percent
			if err := w.Tick(t0.Add(time.Duration(tick) * time.Second)); err != nil {
				t.Fatal(err)
			}
			tick++
		}
	}
	send(5)
	testutil.WaitWithin(t, 30*time.Second, "first intervals delivered", func() bool { return w.Pending() == 0 })

	p.kill()
	send(10)
	testutil.WaitWithin(t, 30*time.Second, "a failed send while the receiver is down", func() bool {
		return promtest.ToFloat64(m.retried.WithLabelValues("prom")) > 0
	})
	send(5)
	if w.Pending() < 15 {
		t.Fatalf("pending = %d during the outage, want >= 15", w.Pending())
	}
	p.start()
	testutil.WaitWithin(t, 60*time.Second, "the buffer delivered after the receiver returned", func() bool { return w.Pending() == 0 })

	got := p.samples("DCGM_FI_DEV_GPU_UTIL", t0.Add(time.Duration(tick)*time.Second))
	if len(got) != 4 {
		t.Fatalf("Prometheus holds %d GPU series, want 4: %v", len(got), got)
	}
	for gpu, vs := range got {
		if len(vs) != tick {
			t.Errorf("gpu %s: %d samples, want %d: %v", gpu, len(vs), tick, vs)
			continue
		}
		if !sort.Float64sAreSorted(vs) {
			t.Errorf("gpu %s: samples out of order: %v", gpu, vs)
		}
		for i, v := range vs {
			if v != float64(25*i) {
				t.Errorf("gpu %s: sample %d = %v, want %d", gpu, i, v, 25*i)
				break
			}
		}
	}
	if d := promtest.ToFloat64(m.dropped.WithLabelValues("prom", "rejected")); d != 0 {
		t.Errorf("%v samples rejected", d)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
