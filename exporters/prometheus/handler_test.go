package prometheus

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleettop/fleettop/wire"
)

func scrape(t *testing.T, e *Exporter, target string, hdr map[string]string) (body string, h map[string]string) {
	t.Helper()
	self := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_self_test_total", Help: "A series of the aggregator's own."})
	self.MustRegister(c)
	req := httptest.NewRequest("GET", target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.Handler(self, nil).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET %s: %d", target, rec.Code)
	}
	raw := rec.Body.Bytes()
	if rec.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	h = map[string]string{}
	for k := range rec.Header() {
		h[k] = rec.Header().Get(k)
	}
	return string(raw), h
}

func TestHandlerGzipAndFormats(t *testing.T) {
	e := newTestExporter(fakeInsights{})
	plain, h := scrape(t, e, "/metrics", nil)
	if h["Content-Encoding"] != "" || !strings.HasPrefix(h["Content-Type"], "text/plain; version=0.0.4") {
		t.Errorf("plain scrape headers: %v", h)
	}
	normalize(t, []byte(plain)) // parses
	if !strings.Contains(plain, "fleettop_self_test_total 0\n") || !strings.Contains(plain, "DCGM_FI_DEV_GPU_UTIL{") {
		t.Errorf("plain scrape lacks the aggregator's own or the fleet's series:\n%s", plain)
	}
	gz, h := scrape(t, e, "/metrics", map[string]string{"Accept-Encoding": "gzip, deflate"})
	if h["Content-Encoding"] != "gzip" || gz != plain {
		t.Errorf("gzip scrape: encoding %q, same body %v", h["Content-Encoding"], gz == plain)
	}
	if _, h := scrape(t, e, "/metrics", map[string]string{"Accept-Encoding": "gzip;q=0"}); h["Content-Encoding"] != "" {
		t.Errorf("gzip;q=0 was compressed")
	}
	om, h := scrape(t, e, "/metrics", map[string]string{"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
	if !strings.HasPrefix(h["Content-Type"], "application/openmetrics-text; version=1.0.0") {
		t.Errorf("OpenMetrics content type: %q", h["Content-Type"])
	}
	for _, want := range []string{"# TYPE fleettop_cost_spend counter\n", "\nfleettop_cost_spend_total{", "# TYPE fleettop_self_test counter\n"} {
		if !strings.Contains(om, want) {
			t.Errorf("OpenMetrics lacks %q", want)
		}
	}
	if !strings.HasSuffix(om, "\n# EOF\n") || strings.Count(om, "# EOF") != 1 {
		t.Errorf("OpenMetrics must end with one # EOF:\n%s", om[max(0, len(om)-200):])
	}
}

func TestHandlerFilters(t *testing.T) {
	e := newTestExporter(fakeInsights{})
	body, _ := scrape(t, e, "/metrics?region=Johor", nil)
	normalize(t, []byte(body))
	if strings.Contains(body, "DCGM_FI_") || !strings.Contains(body, "npu_chip_info_utilization{") {
		t.Errorf("?region=Johor: want only the Johor node's devices:\n%s", body)
	}
	if strings.Contains(body, `region="Singapore"`) || !strings.Contains(body, `fleettop_cost_burn_per_hour{currency="USD",jurisdiction="MY"`) {
		t.Errorf("?region=Johor: placement series not limited to Johor:\n%s", body)
	}
	if strings.Contains(body, "fleettop_self_test_total") {
		t.Errorf("a filtered scrape carries the aggregator's own series")
	}
	body, _ = scrape(t, e, "/metrics?node=sg-1&node=nope", nil)
	if !strings.Contains(body, `UUID="GPU-aaaa"`) || strings.Contains(body, "npu_chip_info") || strings.Contains(body, "fleettop_cost_spend_total") {
		t.Errorf("?node=sg-1: want sg-1's series and no placement money:\n%s", body)
	}
}

// TestHostileLabels: values that are not valid UTF-8 or carry quotes,
// backslashes and newlines still make a valid exposition.
func TestHostileLabels(t *testing.T) {
	views := func() []wire.NodeView {
		vs := fixture()
		vs[0].Hostname = "evil\"host\\\nname\xff\xfe"
		vs[0].Region = "re}gion{,=\""
		vs[0].Devices[0].Model = "H100\x00\"}"
		return vs
	}
	e := NewExporter(fakeFleet(views), nil)
	body, _ := scrape(t, e, "/metrics", nil)
	normalize(t, []byte(body))
	if !strings.Contains(body, `Hostname="evil\"host\\\nname`+"\uFFFD") {
		t.Errorf("hostile hostname not escaped as expected:\n%s", body)
	}
}

// TestForgottenNodesLeaveTheCache: a node the fleet no longer lists loses
// its label sets and its series.
func TestForgottenNodesLeaveTheCache(t *testing.T) {
	all := true
	e := NewExporter(fakeFleet(func() []wire.NodeView {
		if all {
			return fixture()
		}
		return fixture()[:1]
	}), nil)
	body, _ := scrape(t, e, "/metrics", nil)
	if len(e.cache) != 3 || !strings.Contains(body, "npu_chip_info") {
		t.Fatalf("cache holds %d nodes, want 3", len(e.cache))
	}
	all = false
	body, _ = scrape(t, e, "/metrics", nil)
	if len(e.cache) != 1 || strings.Contains(body, "npu_chip_info") {
		t.Errorf("after two nodes went: cache holds %d nodes, npu series present %v", len(e.cache), strings.Contains(body, "npu_chip_info"))
	}
}
