package prometheus

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Content types served on /metrics.
const (
	contentText = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
	contentOM   = "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
)

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// Handler serves /metrics: the aggregator's own series from self (nil: none)
// followed by the fleet's, in the text format or, when the scraper asks for
// it, OpenMetrics; gzip-compressed on Accept-Encoding: gzip. Query
// parameters region= and node= (repeatable, or comma-separated) limit the
// fleet series, so that large fleets can shard their scrapes; a filtered
// scrape leaves out the aggregator's own series, which would otherwise
// appear once per shard. It never fails: what cannot be gathered is logged
// and left out.
func (e *Exporter) Handler(self prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flt := filterFrom(r)
		format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
		om := format.FormatType() == expfmt.TypeOpenMetrics
		h := w.Header()
		if om {
			format = expfmt.NewFormat(expfmt.TypeOpenMetrics)
			h.Set("Content-Type", contentOM)
		} else {
			format = expfmt.NewFormat(expfmt.TypeTextPlain)
			h.Set("Content-Type", contentText)
		}
		h.Set("Cache-Control", "no-store")
		h.Add("Vary", "Accept-Encoding")
		var out io.Writer = w
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			gz := gzipPool.Get().(*gzip.Writer)
			gz.Reset(w)
			defer func() {
				_ = gz.Close()
				gzipPool.Put(gz)
			}()
			out = gz
		}
		if self != nil && flt.empty() {
			mfs, err := self.Gather()
			if err != nil {
				log.Error("metrics: gather the aggregator's own series", "err", err)
			}
			enc := expfmt.NewEncoder(out, format)
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					log.Debug("metrics: write", "err", err)
					return
				}
			}
		}
		ts := &textSink{w: out, om: om, buf: make([]byte, 0, textChunk+4096)}
		e.render(ts, flt)
		if om {
			ts.buf = append(ts.buf, "# EOF\n"...)
		}
		ts.flush()
		if ts.err != nil {
			log.Debug("metrics: write", "err", ts.err)
		}
	})
}

// filterFrom reads ?region= and ?node=, each repeatable or comma-separated.
func filterFrom(r *http.Request) Filter {
	q := r.URL.Query()
	split := func(vs []string) []string {
		var out []string
		for _, v := range vs {
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		}
		return out
	}
	return Filter{Regions: split(q["region"]), Nodes: split(q["node"])}
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip.
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		p := strings.ReplaceAll(params, " ", "")
		return p != "q=0" && p != "q=0.0" && p != "q=0.00" && p != "q=0.000"
	}
	return false
}
