package prometheus

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
)

// WriteRequests renders the same series as /metrics (the aggregator's own
// from self, nil: none, then the fleet's) as Prometheus remote_write v1
// WriteRequest messages (uncompressed protobuf) of at most maxSeries series
// each, every sample stamped ts, and hands each to emit. The slice passed
// to emit is reused after emit returns. It returns the number of samples.
func (e *Exporter) WriteRequests(ts time.Time, maxSeries int, self prometheus.Gatherer, emit func(req []byte, samples int)) int {
	if maxSeries <= 0 {
		maxSeries = 2000
	}
	p := &pbSink{ts: ts.UnixMilli(), max: maxSeries, emit: emit}
	if self != nil {
		mfs, _ := self.Gather() // what could not be gathered is left out
		for _, mf := range mfs {
			selfSeries(p, mf)
		}
	}
	e.render(p, Filter{})
	p.flush()
	return p.total
}

// pbSink encodes samples as TimeSeries into WriteRequests.
type pbSink struct {
	ts    int64
	max   int
	emit  func([]byte, int)
	buf   []byte
	n     int
	total int
}

func (p *pbSink) sample(f *Family, ls *labelSet, v float64) {
	pb := ls.protobuf()
	// Sample{value=1 double, timestamp=2 int64}
	sampleLen := 1 + 8 + 1 + protowire.SizeVarint(uint64(p.ts))
	f.render()
	tsLen := len(pb.before) + len(f.nameLabelPB) + len(pb.after) + 1 + protowire.SizeBytes(sampleLen)
	p.buf = protowire.AppendTag(p.buf, 1, protowire.BytesType)
	p.buf = protowire.AppendVarint(p.buf, uint64(tsLen))
	p.buf = append(p.buf, pb.before...)
	p.buf = append(p.buf, f.nameLabelPB...)
	p.buf = append(p.buf, pb.after...)
	p.buf = protowire.AppendTag(p.buf, 2, protowire.BytesType)
	p.buf = protowire.AppendVarint(p.buf, uint64(sampleLen))
	p.buf = protowire.AppendTag(p.buf, 1, protowire.Fixed64Type)
	p.buf = protowire.AppendFixed64(p.buf, math.Float64bits(v))
	p.buf = protowire.AppendTag(p.buf, 2, protowire.VarintType)
	p.buf = protowire.AppendVarint(p.buf, uint64(p.ts))
	p.n++
	p.total++
	if p.n >= p.max {
		p.flush()
	}
}

func (p *pbSink) flush() {
	if p.n > 0 {
		p.emit(p.buf, p.n)
	}
	p.buf, p.n = p.buf[:0], 0
}

// selfSeries writes one of the aggregator's own families as samples:
// counters, gauges and untyped as they are, summaries and histograms
// flattened as the text format flattens them.
func selfSeries(p *pbSink, mf *dto.MetricFamily) {
	name := mf.GetName()
	fam := func(suffix string) *Family { return newFamily(name+suffix, "", "gauge") }
	base, sum, cnt := fam(""), fam("_sum"), fam("_count")
	for _, m := range mf.GetMetric() {
		pairs := func(extra ...label) *labelSet {
			ps := make([]label, 0, len(m.GetLabel())+len(extra))
			for _, l := range m.GetLabel() {
				ps = append(ps, label{l.GetName(), l.GetValue()})
			}
			return newLabelSet(append(ps, extra...))
		}
		switch {
		case m.Counter != nil:
			p.sample(base, pairs(), m.GetCounter().GetValue())
		case m.Gauge != nil:
			p.sample(base, pairs(), m.GetGauge().GetValue())
		case m.Untyped != nil:
			p.sample(base, pairs(), m.GetUntyped().GetValue())
		case m.Summary != nil:
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				p.sample(base, pairs(label{"quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)}), q.GetValue())
			}
			ls := pairs()
			p.sample(sum, ls, s.GetSampleSum())
			p.sample(cnt, ls, float64(s.GetSampleCount()))
		case m.Histogram != nil:
			h := m.GetHistogram()
			bucket := fam("_bucket")
			inf := false
			for _, b := range h.GetBucket() {
				le := b.GetUpperBound()
				inf = inf || math.IsInf(le, 1)
				p.sample(bucket, pairs(label{"le", formatLe(le)}), float64(b.GetCumulativeCount()))
			}
			if !inf {
				p.sample(bucket, pairs(label{"le", "+Inf"}), float64(h.GetSampleCount()))
			}
			ls := pairs()
			p.sample(sum, ls, h.GetSampleSum())
			p.sample(cnt, ls, float64(h.GetSampleCount()))
		}
	}
}

func formatLe(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
