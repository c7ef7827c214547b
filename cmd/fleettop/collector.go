package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/collector/ascend"
	"github.com/fleettop/fleettop/collector/host"
	"github.com/fleettop/fleettop/collector/jobs"
	nvmlsource "github.com/fleettop/fleettop/collector/nvml"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/dirlock"
	"github.com/fleettop/fleettop/internal/exetrim"
	"github.com/fleettop/fleettop/internal/sdnotify"
	"github.com/fleettop/fleettop/internal/secretfile"
	"github.com/fleettop/fleettop/mock"
)

type collectorOptions struct {
	aggregator, tokenFile, config string
	interval                      time.Duration
	dataDir                       string
	spoolMax                      int64
	mock                          string
	seed                          int64
	once, json                    bool
	procRoot, npuSmi, nvmlLib     string
	npuSmiInterval                time.Duration
	machineID                     string
	insecure                      bool
	// gomaxprocs is GOMAXPROCS for the collector (0: the runtime's
	// default); gomaxprocsSet tells an explicit flag from its default,
	// which yields to a GOMAXPROCS environment variable.
	gomaxprocs    int
	gomaxprocsSet bool
}

func newCollectorCmd() *cobra.Command {
	var o collectorOptions
	var cfgFlags = map[string]*string{}
	c := &cobra.Command{
		Use:   "collector",
		Short: "Sample this node's GPUs/NPUs and stream them to the aggregator",
		Long: `Runs on every rented node: samples NVIDIA GPUs (NVML), Ascend NPUs (npu-smi),
the host and the jobs of GPU processes, keeps every sample in a durable spool,
and streams the spool to the aggregator, resending after any outage.

Identity and lease labels come from ` + collector.DefaultConfigPath + ` (if present);
every key of it can be overridden by the flag of the same name.
The token comes from --token-file or the FLEETTOP_TOKEN environment variable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set := map[string]string{}
			for key, p := range cfgFlags {
				if cmd.Flags().Changed(strings.ReplaceAll(key, "_", "-")) {
					set[key] = *p
				}
			}
			o.gomaxprocsSet = cmd.Flags().Changed("gomaxprocs")
			return runCollector(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, set, cmd.Flags().Changed("config"))
		},
	}
	f := c.Flags()
	f.StringVar(&o.aggregator, "aggregator", "", "aggregator URL, ws://HOST:PORT or wss://HOST:PORT")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the collector token, owner-only (chmod 600) (else $FLEETTOP_TOKEN)")
	f.BoolVar(&o.insecure, "insecure", false, "allow plain ws:// to an aggregator that is not on loopback (the token travels in clear text)")
	f.StringVar(&o.config, "config", collector.DefaultConfigPath, "identity and lease config file (YAML)")
	f.DurationVar(&o.interval, "interval", time.Second, "sampling interval")
	f.StringVar(&o.dataDir, "data-dir", "/var/lib/fleettop", "state directory; the spool lives in DIR/spool")
	f.Int64Var(&o.spoolMax, "spool-max-bytes", collector.DefaultSpoolMaxBytes, "bound of the spool in bytes; the oldest samples are dropped beyond it")
	f.StringVar(&o.mock, "mock", "", "use a simulated device set instead of hardware: nvidia or ascend")
	f.Int64Var(&o.seed, "seed", 1, "seed of the simulated device set (with --mock)")
	f.BoolVar(&o.once, "once", false, "take one sample from every source, print it and exit")
	f.BoolVar(&o.json, "json", false, "print the --once sample as JSON (the only format)")
	f.StringVar(&o.procRoot, "proc-root", "/proc", "proc filesystem to read host and job data from")
	f.StringVar(&o.npuSmi, "npu-smi", "npu-smi", "npu-smi binary for Ascend NPUs")
	f.DurationVar(&o.npuSmiInterval, "npu-smi-interval", 5*time.Second, "how often npu-smi runs, in the background (each tick uses its last good reading); 0: 5s")
	f.StringVar(&o.nvmlLib, "nvml-lib", "", "NVML library to load (default: the system's libnvidia-ml.so.1)")
	f.StringVar(&o.machineID, "machine-id-file", "/etc/machine-id", "file whose content is the default node id")
	f.IntVar(&o.gomaxprocs, "gomaxprocs", 1, "CPUs the collector's Go code may use at once (GOMAXPROCS); 0: all of them. $GOMAXPROCS overrides the default")
	for _, key := range collector.ConfigKeys {
		p := new(string)
		cfgFlags[key] = p
		usage := "overrides " + key + " of the config file"
		if key == "labels" {
			usage = "overrides the labels of the config file: k=v,k2=v2"
		}
		f.StringVar(p, strings.ReplaceAll(key, "_", "-"), "", usage)
	}
	return c
}

func runCollector(ctx context.Context, stdout, stderr io.Writer, o collectorOptions, set map[string]string, explicitConfig bool) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := o.check(); err != nil {
		return err
	}
	setCollectorProcs(o.gomaxprocs, o.gomaxprocsSet)
	cfg, err := collector.LoadConfig(o.config, explicitConfig)
	if err != nil {
		return usagef("%v", err)
	}
	for key, v := range set {
		if err := cfg.Set(key, v, "--"+strings.ReplaceAll(key, "_", "-")); err != nil {
			return usagef("%v", err)
		}
	}

	node, srcs, resolver, err := collectorSources(o, &cfg, len(set) > 0 || explicitConfig, log)
	if err != nil {
		return err
	}
	node.AgentVersion = agentVersion()

	acfg := collector.AgentConfig{
		Node: node, Sources: srcs, Interval: o.interval, Logger: log,
		AgentVersion: agentVersion(), SpoolMaxBytes: o.spoolMax,
	}
	if resolver != nil {
		acfg.Jobs = resolver
	}
	if o.once {
		return collectOnce(ctx, stdout, acfg)
	}

	if o.aggregator == "" {
		return usagef("--aggregator is required, e.g. --aggregator wss://aggregator.example:7443 (or use --once --json)")
	}
	if err := collector.CheckURL(o.aggregator, o.insecure); err != nil {
		return usagef("--aggregator: %v", err)
	}
	if o.insecure && !strings.HasPrefix(o.aggregator, "wss://") {
		log.Warn("INSECURE: sending the token and telemetry over plain ws://", "aggregator", o.aggregator)
	}
	token, err := readToken(o.tokenFile)
	if err != nil {
		return err
	}
	acfg.URL, acfg.Token, acfg.Insecure = o.aggregator, token, o.insecure
	acfg.SpoolDir = filepath.Join(o.dataDir, "spool")
	if err := os.MkdirAll(acfg.SpoolDir, 0o750); err != nil {
		return usagef("--data-dir %s: %v; give a writable state directory", o.dataDir, err)
	}
	// One collector per data directory: two on one spool would interleave
	// their records and reset each other's sequence numbers.
	lock, err := dirlock.Acquire(o.dataDir)
	if err != nil {
		return usagef("--data-dir: %v", err)
	}
	defer lock.Release()
	sd := sdnotify.New(log, o.interval)
	if sd.Enabled() {
		// Outside systemd nobody reads the status line: do not build it
		// every tick.
		acfg.Notify = sd.Notify
	}
	agent, err := collector.NewAgent(acfg)
	if err != nil {
		return usagef("%v", err)
	}
	log.Info("collector starting", "node", node.ID, "aggregator", o.aggregator, "interval", o.interval, "spool", acfg.SpoolDir, "version", acfg.AgentVersion)
	// Once past startup, keep resident only the parts of the binary the
	// sampling loop runs (package exetrim says why this is not free).
	trim := time.AfterFunc(trimAfter, func() {
		st, err := exetrim.Trim()
		if err != nil {
			log.Warn("could not trim the binary's mappings", "err", err)
			return
		}
		log.Debug("trimmed the binary's mappings", "mappings", st.Mappings, "resident_bytes", st.Bytes)
	})
	defer trim.Stop()
	err = agent.Run(ctx)
	sd.Stopping()
	return err
}

// check refuses flag values the collector cannot run with.
func (o collectorOptions) check() error {
	if o.json && !o.once {
		return usagef("--json goes with --once")
	}
	if o.interval <= 0 {
		return usagef("--interval %s: give a positive duration such as 1s", o.interval)
	}
	if o.npuSmiInterval < 0 {
		return usagef("--npu-smi-interval %s: give a positive duration such as 5s", o.npuSmiInterval)
	}
	if o.mock != "" && o.mock != "nvidia" && o.mock != "ascend" {
		return usagef("--mock %q: write nvidia or ascend", o.mock)
	}
	if o.gomaxprocs < 0 {
		return usagef("--gomaxprocs %d: give 1 (the default), another number of CPUs, or 0 for all", o.gomaxprocs)
	}
	return nil
}

// collectorSources returns the node's identity, its telemetry sources and
// its job resolver: the real ones (NVML, npu-smi, the host) or, with
// --mock, a simulated node's, whose identity the config file and flags
// still override when given (configured).
func collectorSources(o collectorOptions, cfg *collector.Config, configured bool, log *slog.Logger) (fleet.Node, []collector.Source, *jobs.Resolver, error) {
	if o.mock != "" {
		node, srcs, err := mock.CollectorSources(o.mock, o.seed)
		if err != nil {
			return node, nil, nil, fmt.Errorf("simulated %s node: %w", o.mock, err)
		}
		// The config and flags still override the simulated identity.
		if configured {
			if cfg.NodeID == "" {
				cfg.NodeID = node.ID
			}
			n, err := cfg.Node(collector.NodeDefaults{MachineIDPath: o.machineID})
			if err != nil {
				return node, nil, nil, usagef("%v", err)
			}
			node = mergeNode(node, n)
		}
		return node, srcs, nil, nil
	}
	node, err := cfg.Node(collector.NodeDefaults{MachineIDPath: o.machineID})
	if err != nil {
		return node, nil, nil, usagef("%v", err)
	}
	reg := collector.NewRegistry()
	reg.Register("nvml", func() (collector.Source, error) {
		return nvmlsource.NewSystem(nvmlsource.Options{LibraryPath: o.nvmlLib, Logger: log}), nil
	})
	reg.Register("ascend", func() (collector.Source, error) {
		return ascend.New(ascend.Options{Path: o.npuSmi, Interval: o.npuSmiInterval, Logger: log}), nil
	})
	reg.Register("host", func() (collector.Source, error) {
		return host.New(host.Options{ProcRoot: o.procRoot}), nil
	})
	srcs, err := reg.Build()
	if err != nil {
		return node, nil, nil, err
	}
	return node, srcs, jobs.New(jobs.Options{ProcRoot: o.procRoot}), nil
}

// setCollectorProcs limits the Go runtime to n CPUs (0: leave the
// runtime's default), unless n is only the default and $GOMAXPROCS says
// otherwise. The collector's work is one sample a second; on a node with
// 100+ cores the default of one P per core only buys idle Ps that its
// scheduler wakes and parks around every hand-off (8 device workers, the
// uplink, the reader), plus a GC mark worker per P — CPU and memory taken
// from the jobs the node is rented for. node_exporter defaults to 1 for the
// same reason (--runtime.gomaxprocs). Blocking NVML calls do not hold the
// one P: the runtime hands it on while a cgo call is blocked.
func setCollectorProcs(n int, explicit bool) {
	if n == 0 || (!explicit && os.Getenv("GOMAXPROCS") != "") {
		return
	}
	runtime.GOMAXPROCS(n)
}

// mergeNode lays the non-empty identity fields of over onto base.
func mergeNode(base, over fleet.Node) fleet.Node {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	base.ID = pick(base.ID, over.ID)
	base.Region = pick(base.Region, over.Region)
	base.Site = pick(base.Site, over.Site)
	base.Provider = pick(base.Provider, over.Provider)
	base.Jurisdiction = pick(base.Jurisdiction, over.Jurisdiction)
	if over.Lease.ID != "" || over.Lease.PricePerGPUHour.Currency != "" {
		base.Lease = over.Lease
	}
	if len(over.Labels) > 0 {
		base.Labels = over.Labels
	}
	return base
}

func readToken(path string) (string, error) {
	if path != "" {
		b, err := secretfile.ReadFile(path)
		if err != nil {
			return "", usagef("--token-file: %v", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", usagef("--token-file %s is empty; put the collector token in it", path)
		}
		return t, nil
	}
	if t := strings.TrimSpace(os.Getenv("FLEETTOP_TOKEN")); t != "" {
		return t, nil
	}
	return "", usagef("no token: give --token-file FILE or set FLEETTOP_TOKEN")
}

// onceOutput is the JSON of `fleettop collector --once --json`.
type onceOutput struct {
	Node    fleet.Node              `json:"node"`
	Time    time.Time               `json:"time"`
	Sources map[string]sourceStatus `json:"sources"`
	Devices []onceDevice            `json:"devices"`
	Host    map[string]float64      `json:"host,omitempty"`
	Procs   []fleet.Process         `json:"procs"`
	Events  []fleet.Event           `json:"events"`
}

type sourceStatus struct {
	Available bool              `json:"available"`
	Error     string            `json:"error,omitempty"`
	Counters  map[string]uint64 `json:"counters,omitempty"`
}

type onceDevice struct {
	Index   int                `json:"index"`
	UUID    string             `json:"uuid"`
	Vendor  fleet.Vendor       `json:"vendor"`
	Model   string             `json:"model"`
	Metrics map[string]float64 `json:"metrics"`
	// Absent lists the metrics the hardware did not report.
	Absent []string `json:"absent"`
	// ThrottleReasons names the bits of the throttle metric.
	ThrottleReasons []string `json:"throttle_reasons,omitempty"`
	// Instance places a MIG instance under its physical GPU.
	Instance fleet.MIGInstance `json:"mig_instance,omitzero"`
}

func collectOnce(ctx context.Context, stdout io.Writer, acfg collector.AgentConfig) error {
	agent, err := collector.NewAgent(acfg)
	if err != nil {
		return usagef("%v", err)
	}
	agent.Start(ctx)
	defer agent.Close()
	// A short pause gives delta-based readings (host CPU) something to measure.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(250 * time.Millisecond):
	}
	var s fleet.Sample
	s.Time = time.Now()
	errs := agent.CollectSample(ctx, &s)
	node := agent.Node()
	out := onceOutput{Node: node, Time: s.Time, Sources: map[string]sourceStatus{}, Devices: []onceDevice{}, Procs: s.Procs, Events: s.Events}
	for name, err := range agent.Unavailable() {
		out.Sources[name] = sourceStatus{Available: false, Error: err.Error()}
	}
	for _, src := range acfg.Sources {
		if _, down := out.Sources[src.Name()]; down {
			continue
		}
		st := sourceStatus{Available: true}
		if err := errs[src.Name()]; err != nil {
			st.Error = err.Error()
			st.Available = !errors.Is(err, collector.ErrNoData)
		}
		if c, ok := src.(interface{ Counters() map[string]uint64 }); ok {
			st.Counters = c.Counters()
		}
		out.Sources[src.Name()] = st
	}
	inv := map[int]fleet.Device{}
	for _, d := range node.Devices {
		inv[d.Index] = d
	}
	slices.SortFunc(s.Devices, func(a, b fleet.DeviceSample) int { return a.Index - b.Index })
	for _, d := range s.Devices {
		od := onceDevice{Index: d.Index, UUID: inv[d.Index].UUID, Vendor: inv[d.Index].Vendor, Model: inv[d.Index].Model,
			Metrics: map[string]float64{}, Absent: []string{}, Instance: inv[d.Index].Instance}
		if v, ok := d.Get(fleet.MetricThrottle); ok {
			od.ThrottleReasons = fleet.ThrottleReasons(uint64(v))
		}
		for m := range fleet.NumMetrics {
			if v, ok := d.Get(m); ok {
				od.Metrics[m.String()] = v
			} else {
				od.Absent = append(od.Absent, m.String())
			}
		}
		out.Devices = append(out.Devices, od)
	}
	if s.Host != nil {
		out.Host = map[string]float64{}
		for m := range fleet.NumHostMetrics {
			if v, ok := s.Host.Get(m); ok {
				out.Host[m.String()] = v
			}
		}
	}
	if out.Procs == nil {
		out.Procs = []fleet.Process{}
	}
	if out.Events == nil {
		out.Events = []fleet.Event{}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// trimAfter is how long the collector runs before it trims its mappings of
// the binary: past flag parsing, config, source discovery and the first
// samples, whose code it will not run again.
const trimAfter = 3 * time.Second
