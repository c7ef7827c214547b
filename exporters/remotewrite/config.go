// Package remotewrite sends the aggregator's series to a Prometheus
// remote_write receiver (Prometheus, VictoriaMetrics, Mimir, Thanos
// receive): protocol v1, protobuf WriteRequests compressed with snappy.
//
// Every interval the exporter renders the same series as /metrics into
// requests of at most max_samples_per_send samples, which are appended as
// one record to an on-disk queue before anything is sent, so that a
// receiver outage (or an aggregator restart) loses nothing the buffer can
// hold. A sender delivers the queue in order: the requests of one interval
// go out concurrently over up to max_shards connections, and the next
// interval starts only when every request of this one is delivered or
// dropped, so the samples of each series arrive in time order. 5xx, 429
// and network errors are retried with exponential backoff between
// min_backoff and max_backoff (honouring Retry-After); other 4xx answers
// drop the request, as Prometheus does.
package remotewrite

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// Config is one remote_write endpoint.
type Config struct {
	URL             string
	Name            string        // the remote label of fleettop_remote_write_*; default host of URL
	Interval        time.Duration // how often the series are sent (default 15s)
	Timeout         time.Duration // per request (default 30s)
	BearerTokenFile string
	BasicAuth       *BasicAuth
	TLS             TLS
	Headers         map[string]string
	Queue           Queue
}

// BasicAuth is HTTP basic authentication; the password comes from
// PasswordFile when set.
type BasicAuth struct {
	Username, Password, PasswordFile string
}

// TLS configures the client side of https.
type TLS struct {
	CAFile, CertFile, KeyFile, ServerName string
	InsecureSkipVerify                    bool
}

// Queue shapes the sending, as Prometheus' queue_config does.
type Queue struct {
	MaxSamplesPerSend int           // samples per request (default 2000)
	MinShards         int           // concurrent requests when caught up (default 1)
	MaxShards         int           // concurrent requests when behind (default 8)
	MinBackoff        time.Duration // first retry delay (default 30ms)
	MaxBackoff        time.Duration // longest retry delay (default 5s)
	RetryOn429        bool          // retry 429 Too Many Requests (default true)
	SampleAgeLimit    time.Duration // drop buffered samples older than this when sending; 0: never
	MaxBufferBytes    int64         // on-disk buffer; the oldest is dropped beyond it (default 4 GiB)
}

// The file's shape under remote_write:.
type fileRemote struct {
	URL             string            `yaml:"url"`
	Name            string            `yaml:"name"`
	Interval        string            `yaml:"interval"`
	RemoteTimeout   string            `yaml:"remote_timeout"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
	BasicAuth       *fileBasicAuth    `yaml:"basic_auth"`
	TLS             *fileTLS          `yaml:"tls"`
	Headers         map[string]string `yaml:"headers"`
	Queue           *fileQueue        `yaml:"queue"`
}

type fileBasicAuth struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

type fileTLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

type fileQueue struct {
	MaxSamplesPerSend *int   `yaml:"max_samples_per_send"`
	MinShards         *int   `yaml:"min_shards"`
	MaxShards         *int   `yaml:"max_shards"`
	MinBackoff        string `yaml:"min_backoff"`
	MaxBackoff        string `yaml:"max_backoff"`
	RetryOn429        *bool  `yaml:"retry_on_http_429"`
	SampleAgeLimit    string `yaml:"sample_age_limit"`
	MaxBufferBytes    string `yaml:"max_buffer_bytes"`
	// Accepted for compatibility with Prometheus' queue_config; fleettop
	// buffers on disk and sends each interval at once, so they do nothing.
	Capacity          *int   `yaml:"capacity"`
	BatchSendDeadline string `yaml:"batch_send_deadline"`
}

// DefaultQueue returns the queue settings used for keys not given.
func DefaultQueue() Queue {
	return Queue{MaxSamplesPerSend: 2000, MinShards: 1, MaxShards: 8, MinBackoff: 30 * time.Millisecond,
		MaxBackoff: 5 * time.Second, RetryOn429: true, MaxBufferBytes: 4 << 30}
}

// LoadConfig reads the remote_write section of the aggregator's YAML
// config at path ("" or no section: none).
func LoadConfig(path string) ([]Config, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(data, path)
}

// ParseConfig parses the remote_write section of a config file's bytes;
// name is used in errors, which give the line and what to write instead.
func ParseConfig(data []byte, name string) ([]Config, error) {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p, _ := yaml.PathString("$.remote_write")
	node, err := p.FilterFile(file)
	if err != nil || node == nil {
		return nil, nil // no remote_write section
	}
	var fr []fileRemote
	if err := yaml.NodeToValue(node, &fr, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("%s: remote_write: %s", name, yaml.FormatError(err, false, true))
	}
	out := make([]Config, 0, len(fr))
	names := map[string]bool{}
	for i, f := range fr {
		c, err := f.config()
		if err != nil {
			return nil, fmt.Errorf("%s: remote_write[%d]: %w", name, i, err)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("%s: remote_write[%d]: name %q is used twice; give each endpoint its own name", name, i, c.Name)
		}
		names[c.Name] = true
		out = append(out, c)
	}
	return out, nil
}

func (f *fileRemote) config() (Config, error) {
	c := Config{URL: f.URL, Name: f.Name, Interval: 15 * time.Second, Timeout: 30 * time.Second,
		BearerTokenFile: f.BearerTokenFile, Headers: f.Headers, Queue: DefaultQueue()}
	u, err := url.Parse(f.URL)
	if f.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("url %q: write the receiver's full http(s) URL, e.g. http://prometheus:9090/api/v1/write", f.URL)
	}
	if c.Name == "" {
		c.Name = u.Host
	}
	var errs []error
	dur := func(key, s string, d *time.Duration) {
		if s == "" {
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("%s %q: write a duration such as 15s or 2m", key, s))
			return
		}
		*d = v
	}
	dur("interval", f.Interval, &c.Interval)
	dur("remote_timeout", f.RemoteTimeout, &c.Timeout)
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("interval %s: at least 100ms", c.Interval))
	}
	if f.BasicAuth != nil {
		c.BasicAuth = &BasicAuth{Username: f.BasicAuth.Username, Password: f.BasicAuth.Password, PasswordFile: f.BasicAuth.PasswordFile}
		if c.BearerTokenFile != "" {
			errs = append(errs, errors.New("give bearer_token_file or basic_auth, not both"))
		}
	}
	if f.TLS != nil {
		c.TLS = TLS{CAFile: f.TLS.CAFile, CertFile: f.TLS.CertFile, KeyFile: f.TLS.KeyFile, ServerName: f.TLS.ServerName,
			InsecureSkipVerify: f.TLS.InsecureSkipVerify}
		if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			errs = append(errs, errors.New("tls: give both cert_file and key_file, or neither"))
		}
	}
	if q := f.Queue; q != nil {
		pos := func(key string, p *int, d *int) {
			if p == nil {
				return
			}
			if *p < 1 {
				errs = append(errs, fmt.Errorf("queue.%s %d: at least 1", key, *p))
				return
			}
			*d = *p
		}
		pos("max_samples_per_send", q.MaxSamplesPerSend, &c.Queue.MaxSamplesPerSend)
		pos("min_shards", q.MinShards, &c.Queue.MinShards)
		pos("max_shards", q.MaxShards, &c.Queue.MaxShards)
		dur("queue.min_backoff", q.MinBackoff, &c.Queue.MinBackoff)
		dur("queue.max_backoff", q.MaxBackoff, &c.Queue.MaxBackoff)
		dur("queue.sample_age_limit", q.SampleAgeLimit, &c.Queue.SampleAgeLimit)
		if q.RetryOn429 != nil {
			c.Queue.RetryOn429 = *q.RetryOn429
		}
		if q.MaxBufferBytes != "" {
			n, err := ParseBytes(q.MaxBufferBytes)
			if err != nil {
				errs = append(errs, fmt.Errorf("queue.max_buffer_bytes: %w", err))
			}
			c.Queue.MaxBufferBytes = n
		}
		if c.Queue.MinShards > c.Queue.MaxShards {
			c.Queue.MaxShards = c.Queue.MinShards
		}
		if c.Queue.MaxBackoff < c.Queue.MinBackoff {
			c.Queue.MaxBackoff = c.Queue.MinBackoff
		}
	}
	return c, errors.Join(errs...)
}

// ParseBytes reads a size such as 4GiB, 512MiB, 100MB or 1048576.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: write a size such as 4GiB or 512MiB", s)
	}
	return n * mult, nil
}
