package prometheus

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// filtered passes through only the metrics whose descriptor names name.
type filtered struct {
	c    prometheus.Collector
	name string
}

func (f *filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f *filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `fqName: "`+f.name+`"`) {
			ch <- m
		}
	}
}
