package mock

import (
	"context"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

var testStart = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// run collects every node of sc every step for d of simulated time.
func run(t *testing.T, sc *Scenario, d, step time.Duration, visit func(n *Node, s *fleet.Sample)) {
	t.Helper()
	srcs := make([]*Source, len(sc.Nodes))
	for i, n := range sc.Nodes {
		srcs[i] = NewSource(n, SourceOptions{Now: func() time.Time { return sc.Start }})
		if _, err := srcs[i].Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for el := time.Duration(0); el <= d; el += step {
		for i, src := range srcs {
			s := fleet.Sample{Time: sc.Start.Add(el)}
			if err := src.Collect(context.Background(), &s); err != nil {
				t.Fatal(err)
			}
			visit(sc.Nodes[i], &s)
		}
	}
}

func TestDeterminism(t *testing.T) {
	record := func(seed int64) ([]fleet.Node, []fleet.Sample) {
		sc, err := New(Config{Seed: seed, Start: testStart})
		if err != nil {
			t.Fatal(err)
		}
		var infos []fleet.Node
		for _, n := range sc.Nodes {
			infos = append(infos, n.Info)
		}
		var samples []fleet.Sample
		run(t, sc, 10*time.Minute, 7*time.Second, func(_ *Node, s *fleet.Sample) { samples = append(samples, *s) })
		return infos, samples
	}
	i1, s1 := record(42)
	i2, s2 := record(42)
	if !reflect.DeepEqual(i1, i2) {
		t.Fatal("same seed gave different fleets")
	}
	if !reflect.DeepEqual(s1, s2) {
		t.Fatal("same seed gave different readings")
	}
	i3, s3 := record(43)
	if reflect.DeepEqual(i1, i3) || reflect.DeepEqual(s1, s3) {
		t.Fatal("different seeds gave the same fleet or readings")
	}
}

func TestNodeIndependentOfFleetSize(t *testing.T) {
	small, _ := New(Config{Seed: 7, Start: testStart, Nodes: 5})
	big, _ := New(Config{Seed: 7, Start: testStart, Nodes: 90})
	for i, n := range small.Nodes {
		if !reflect.DeepEqual(n.Info, big.Nodes[i].Info) {
			t.Fatalf("node %d differs between a 5- and a 90-node fleet", i)
		}
	}
	ids := map[string]bool{}
	for _, n := range big.Nodes {
		if ids[n.Info.ID] {
			t.Fatalf("duplicate node id %s", n.Info.ID)
		}
		ids[n.Info.ID] = true
	}
}

// TestFirstHourCoverage: every region, node type, fault and the residency
// violation appear in the default scenario within the first simulated hour.
func TestFirstHourCoverage(t *testing.T) {
	sc, err := New(Config{Seed: 1, Start: testStart})
	if err != nil {
		t.Fatal(err)
	}
	devices := 0
	seen := map[string]bool{}
	for _, n := range sc.Nodes {
		devices += len(n.Info.Devices)
		seen["region:"+n.Info.Region] = true
		seen["jur:"+n.Info.Jurisdiction] = true
		seen["model:"+n.Model.Key] = true
		seen["work:"+n.Work.String()] = true
		seen["cur:"+n.Info.Lease.PricePerGPUHour.Currency] = true
		if n.Info.Lease.Reserved {
			seen["reserved"] = true
		} else {
			seen["on-demand"] = true
		}
		if e := n.Info.Lease.End; !e.IsZero() && e.Sub(sc.Start) < 4*24*time.Hour {
			seen["lease ending within days"] = true
		}
		if len(n.Info.Devices) != n.Model.PerNode || n.Info.Devices[0].MemoryTotal == 0 || n.Info.Devices[0].PowerLimit == 0 {
			t.Errorf("%s: bad inventory %+v", n.Info.ID, n.Info.Devices[0])
		}
		for el := time.Duration(0); el < time.Hour; el += 10 * time.Second {
			if n.Dark(sc.Start.Add(el)) {
				seen["dark node"] = true
			}
		}
	}
	if len(sc.Nodes) != DefaultNodes || devices < 280 || devices > 320 {
		t.Errorf("default fleet: %d nodes, %d devices; want %d nodes, about 300 devices", len(sc.Nodes), devices, DefaultNodes)
	}
	energy := map[string]float64{}
	run(t, sc, time.Hour, 5*time.Second, func(n *Node, s *fleet.Sample) {
		for _, ev := range s.Events {
			switch ev.Kind {
			case fleet.EventXID:
				seen["xid:"+itoa(ev.Code)] = true
			default:
				seen["event:"+string(ev.Kind)] = true
			}
		}
		for _, p := range s.Procs {
			if p.Job.DataClass == "cn-customer" {
				if n.Info.Jurisdiction != "CN" {
					seen["residency violation"] = true
				} else {
					seen["cn-customer in CN"] = true
				}
			}
		}
		for _, d := range s.Devices {
			if !d.Has(fleet.MetricUtil) {
				if h, _ := d.Get(fleet.MetricHealth); h == float64(fleet.HealthCritical) {
					seen["device fell off the bus"] = true
				}
				continue
			}
			if th, _ := d.Get(fleet.MetricThrottle); uint32(th)&ThrottleHwThermalSlowdown != 0 {
				seen["thermal throttle"] = true
			}
			if e, ok := d.Get(fleet.MetricEnergy); ok {
				k := n.Info.ID + itoa(int64(d.Index))
				if e < energy[k] {
					t.Fatalf("%s: energy went down %v → %v", k, energy[k], e)
				}
				energy[k] = e
			}
			if u, _ := d.Get(fleet.MetricUtil); u < 0 || u > 1 {
				t.Fatalf("util %v out of range", u)
			}
			used, _ := d.Get(fleet.MetricMemUsed)
			free, _ := d.Get(fleet.MetricMemFree)
			total, _ := d.Get(fleet.MetricMemTotal)
			if used+free != total || used <= 0 {
				t.Fatalf("%s: memory %v + %v != %v", n.Info.ID, used, free, total)
			}
		}
	})
	want := []string{
		"region:Singapore", "region:Johor", "region:Dubai", "region:Riyadh", "region:Hangzhou", "region:Beijing",
		"jur:SG", "jur:MY", "jur:AE", "jur:SA", "jur:CN",
		"model:h100", "model:h200", "model:h20", "model:a100", "model:l40s", "model:910b",
		"work:idle", "work:training", "work:inference", "work:notebook",
		"cur:USD", "cur:SGD", "cur:MYR", "cur:AED", "cur:SAR", "cur:CNY",
		"reserved", "on-demand", "lease ending within days",
		"xid:79", "xid:48", "xid:63", "xid:94", "event:ecc", "event:thermal", "event:health",
		"thermal throttle", "device fell off the bus", "dark node",
		"residency violation", "cn-customer in CN",
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("first hour lacks %s", w)
		}
	}
	if violations := countViolations(sc); violations != 1 {
		t.Errorf("%d nodes run cn-customer jobs outside CN; want exactly 1", violations)
	}
}

func countViolations(sc *Scenario) int {
	c := 0
	for _, n := range sc.Nodes {
		if n.Info.Jurisdiction != "CN" && len(n.jobs) > 0 && n.jobs[0].DataClass == "cn-customer" {
			c++
		}
	}
	return c
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestWorkloadShapes checks the physics: training is steady and near the
// power limit with memory near full, inference follows the local day, idle
// nodes idle, and temperature follows power.
func TestWorkloadShapes(t *testing.T) {
	sc, _ := New(Config{Seed: 3, Start: testStart})
	byWork := map[Workload]*Node{}
	for _, n := range sc.Nodes {
		if _, ok := byWork[n.Work]; !ok && len(n.faults) == 0 && n.Model.Vendor == fleet.VendorNVIDIA {
			byWork[n.Work] = n
		}
	}
	read := func(n *Node, el time.Duration) fleet.DeviceSample {
		var ds fleet.DeviceSample
		n.ReadDevice(0, sc.Start.Add(el), 0, &ds)
		return ds
	}
	mean := func(n *Node, m fleet.Metric, from time.Duration) float64 {
		s := 0.0
		for i := range 60 {
			ds := read(n, from+time.Duration(i)*time.Minute)
			v, _ := ds.Get(m)
			s += v
		}
		return s / 60
	}
	tr := byWork[Training]
	if u := mean(tr, fleet.MetricUtil, 0); u < 0.8 {
		t.Errorf("training util %.2f; want steady and high", u)
	}
	if p := mean(tr, fleet.MetricPower, 0); p < 0.8*tr.Model.PowerLimit || p > tr.Model.PowerLimit {
		t.Errorf("training power %.0f W of %.0f W limit; want near the limit", p, tr.Model.PowerLimit)
	}
	if m := mean(tr, fleet.MetricMemUsed, 0); m < 0.9*float64(tr.Model.MemMiB*mib) {
		t.Errorf("training memory %.0f; want near full", m)
	}
	idle := byWork[Idle]
	if u := mean(idle, fleet.MetricUtil, 0); u != 0 {
		t.Errorf("idle node util %.2f; want 0", u)
	}
	if tp, ti := mean(tr, fleet.MetricTemp, 0), mean(idle, fleet.MetricTemp, 0); tp < ti+15 {
		t.Errorf("training at %.0f °C, idle at %.0f °C: temperature does not follow power", tp, ti)
	}
	inf := byWork[Inference]
	// Find local 04:00 and 16:00 for the inference node.
	localAt := func(hour int) time.Duration {
		for h := range 24 {
			el := time.Duration(h) * time.Hour
			lh := int(float64(sc.Start.Add(el).Unix())+inf.utcOffset) / 3600 % 24
			if lh == hour {
				return el
			}
		}
		t.Fatal("no such hour")
		return 0
	}
	night, afternoon := mean(inf, fleet.MetricUtil, localAt(3)), mean(inf, fleet.MetricUtil, localAt(15))
	if afternoon < night+0.3 {
		t.Errorf("inference util %.2f at local night, %.2f in the afternoon; want it to follow the local day", night, afternoon)
	}
}

func TestCollectorSources(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		vendor fleet.Vendor
		jur    string
		err    bool
	}{
		{"nvidia", fleet.VendorNVIDIA, "SG", false},
		{"ascend", fleet.VendorAscend, "CN", false},
		{"amd", "", "", true},
	} {
		node, srcs, err := CollectorSources(tc.kind, 1)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error", tc.kind)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		if node.ID == "" || node.Jurisdiction != tc.jur || node.Lease.PricePerGPUHour.Micros == 0 {
			t.Errorf("%s: node %+v", tc.kind, node)
		}
		var devs []fleet.Device
		for _, src := range srcs {
			inv, err := src.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			devs = append(devs, inv.Devices...)
		}
		if len(devs) != 8 || devs[0].Vendor != tc.vendor || devs[0].MemoryTotal == 0 || devs[0].PowerLimit == 0 {
			t.Errorf("%s: inventory %+v", tc.kind, devs)
		}
		var s fleet.Sample
		s.Time = time.Now()
		for _, src := range srcs {
			if err := src.Collect(context.Background(), &s); err != nil {
				t.Fatal(err)
			}
		}
		if len(s.Devices) != 8 || !s.Devices[0].Has(fleet.MetricPower) || s.Host == nil {
			t.Errorf("%s: sample %+v", tc.kind, s)
		}
		if len(s.Procs) == 0 || s.Procs[0].Job.ID == "" || s.Procs[0].Name == "" {
			t.Errorf("%s: processes without jobs: %+v", tc.kind, s.Procs)
		}
		for _, src := range srcs {
			if err := src.Close(); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestClock(t *testing.T) {
	real := testStart
	c := newClock(testStart.Add(time.Hour), 60, func() time.Time { return real })
	real = real.Add(10 * time.Second)
	if got, want := c.Now(), testStart.Add(time.Hour+10*time.Minute); !got.Equal(want) {
		t.Errorf("Now = %v; want %v", got, want)
	}
}

func TestCatchUpClock(t *testing.T) {
	wall := testStart
	c := newCatchUpClock(61, time.Minute, func() time.Time { return wall })
	if got, want := c.Now(), testStart.Add(-time.Hour); !got.Equal(want) {
		t.Fatalf("catch-up clock starts at %v; want an hour behind, %v", got, want)
	}
	wall = wall.Add(30 * time.Second)
	if got, want := c.Now(), testStart.Add(-30*time.Minute+30*time.Second); !got.Equal(want) {
		t.Errorf("half way: %v; want %v", got, want)
	}
	if got := c.CatchUpIn(); got != 30*time.Second {
		t.Errorf("CatchUpIn = %v; want 30s", got)
	}
	wall = wall.Add(5 * time.Minute)
	if got := c.Now(); !got.Equal(wall) {
		t.Errorf("after catching up: %v; want the wall clock %v", got, wall)
	}
	if c.CatchUpIn() != 0 {
		t.Error("CatchUpIn after catching up is not 0")
	}
}

// TestOwnedSitesDoNotGrow: larger fleets repeat the rented groups only; the
// owned Ascend sites stay the size of the base block.
func TestOwnedSitesDoNotGrow(t *testing.T) {
	base, err := New(Config{Seed: 3, Start: testStart})
	if err != nil {
		t.Fatal(err)
	}
	big, err := New(Config{Seed: 3, Start: testStart, Nodes: 1250})
	if err != nil {
		t.Fatal(err)
	}
	count := func(sc *Scenario) (owned, nvidia int) {
		for _, n := range sc.Nodes {
			if n.Model.Vendor == fleet.VendorAscend {
				owned++
				continue
			}
			for _, d := range n.Info.Devices {
				if d.Instance.Profile == "" {
					nvidia++
				}
			}
		}
		return owned, nvidia
	}
	o1, _ := count(base)
	o2, gpus := count(big)
	if o1 == 0 || o2 != o1 {
		t.Fatalf("owned Ascend nodes: %d in the base block, %d in 1,250 nodes; want the same, and some", o1, o2)
	}
	if gpus < 9000 {
		t.Fatalf("1,250 nodes hold %d NVIDIA GPUs; want about 9,300 (rented nodes of 4 to 8 GPUs)", gpus)
	}
	t.Logf("1,250 nodes: %d owned Ascend nodes, %d NVIDIA GPUs", o2, gpus)
}

// TestNextXIDAfter: the time nextXIDAfter gives is exactly when AppendEvents
// first reports an XID, so an event set that sleeps until then misses none.
func TestNextXIDAfter(t *testing.T) {
	sc, err := New(Config{Seed: 1, Start: testStart})
	if err != nil {
		t.Fatal(err)
	}
	hasXID := func(evs []fleet.Event) bool {
		for _, ev := range evs {
			if ev.Kind == fleet.EventXID {
				return true
			}
		}
		return false
	}
	checked := 0
	for _, n := range sc.Nodes {
		from := testStart.Add(-time.Minute)
		for range 3 {
			next := n.nextXIDAfter(from)
			if !next.After(from) {
				t.Fatalf("%s: next XID after %v is %v, not later", n.Info.ID, from, next)
			}
			if next.Sub(from) >= 24*time.Hour {
				break // none scheduled
			}
			if hasXID(n.AppendEvents(nil, from, next.Add(-time.Millisecond))) {
				t.Fatalf("%s: an XID in (%v, %v), before the next one at %v", n.Info.ID, from, next.Add(-time.Millisecond), next)
			}
			if !hasXID(n.AppendEvents(nil, from, next)) {
				t.Fatalf("%s: no XID in (%v, %v]", n.Info.ID, from, next)
			}
			checked++
			from = next
		}
	}
	if checked == 0 {
		t.Fatal("no node with a scheduled XID")
	}
}
