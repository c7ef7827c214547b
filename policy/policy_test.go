package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func dev(index int, kv ...float64) fleet.DeviceSample {
	d := fleet.DeviceSample{Index: index}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Set(fleet.Metric(kv[i]), kv[i+1])
	}
	return d
}

// step is one input to a node's rules: a sample or a state change, at
// offset at from t0, followed by the ids expected open afterwards (judged at
// the same instant).
type step struct {
	at     time.Duration
	sample *fleet.Sample
	state  string
	want   []string
}

func ids(cs []Condition) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func run(t *testing.T, r Rules, n NodeInfo, steps []step) {
	t.Helper()
	var tr NodeTracker
	book := NewBook(time.Hour, 10)
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.sample != nil {
			s.sample.Time = now
			r.Observe(&tr, s.sample)
		}
		if s.state != "" {
			r.SetState(&tr, s.state, now)
		}
		cs := r.Conditions(&tr, n, now, nil)
		book.Sync("node/"+n.ID, cs, now)
		got := ids(cs)
		want := s.want
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d (+%s): conditions %q, want %q", i, s.at, got, want)
		}
		if book.OpenCount() != len(want) {
			t.Fatalf("step %d: %d open alerts, want %d", i, book.OpenCount(), len(want))
		}
	}
}

func TestResidencyRaiseAndClear(t *testing.T) {
	r := DefaultRules()
	r.Residency = map[string][]string{"cn-customer": {"CN"}}
	cnJob := fleet.Job{ID: "j42", Team: "ml", DataClass: "cn-customer"}
	other := fleet.Job{ID: "j7", DataClass: "public"}
	procs := func(ps ...fleet.Process) *fleet.Sample { return &fleet.Sample{ProcsSet: true, Procs: ps} }
	sg := NodeInfo{ID: "sg-1", Region: "Singapore", Jurisdiction: "SG", Leased: true}
	cn := NodeInfo{ID: "cn-1", Region: "Shanghai", Jurisdiction: "CN", Leased: true}

	t.Run("raised on the first sample, cleared when the process ends", func(t *testing.T) {
		run(t, r, sg, []step{
			{at: 0, sample: procs(fleet.Process{Device: 0, PID: 1, Job: other})},
			{at: time.Second, sample: procs(fleet.Process{Device: 0, PID: 2, Job: cnJob}, fleet.Process{Device: 1, PID: 3, Job: cnJob}),
				want: []string{"residency/j42/sg-1"}},
			// A record without a process list keeps the previous one.
			{at: 2 * time.Second, sample: &fleet.Sample{}, want: []string{"residency/j42/sg-1"}},
			{at: 3 * time.Second, sample: procs(fleet.Process{Device: 0, PID: 1, Job: other})},
		})
	})
	t.Run("allowed jurisdiction", func(t *testing.T) {
		run(t, r, cn, []step{{sample: procs(fleet.Process{Device: 0, PID: 2, Job: cnJob})}})
	})
	t.Run("unknown class is unrestricted", func(t *testing.T) {
		run(t, r, sg, []step{{sample: procs(fleet.Process{PID: 2, Job: fleet.Job{ID: "x", DataClass: "secret"}})}})
	})
	t.Run("book records start and end", func(t *testing.T) {
		var tr NodeTracker
		b := NewBook(time.Hour, 10)
		r.Observe(&tr, &fleet.Sample{Time: t0, ProcsSet: true, Procs: []fleet.Process{{PID: 2, Job: cnJob}}})
		trs := b.Sync("node/sg-1", r.Conditions(&tr, sg, t0, nil), t0)
		if len(trs) != 1 || !trs[0].Opened || trs[0].Alert.Kind != fleet.EventResidency || trs[0].Alert.Job != "j42" {
			t.Fatalf("open transitions %+v", trs)
		}
		end := t0.Add(2 * time.Second)
		r.Observe(&tr, &fleet.Sample{Time: end, ProcsSet: true})
		trs = b.Sync("node/sg-1", r.Conditions(&tr, sg, end, nil), end)
		if len(trs) != 1 || trs[0].Opened || !trs[0].Alert.End.Equal(end) || !trs[0].Alert.Start.Equal(t0) {
			t.Fatalf("end transitions %+v", trs)
		}
		all := b.Alerts(end)
		if len(all) != 1 || all[0].Open() {
			t.Fatalf("alerts %+v, want the one closed", all)
		}
		if got := b.Alerts(end.Add(2 * time.Hour)); len(got) != 0 {
			t.Fatalf("closed alert kept past the window: %+v", got)
		}
	})
}

func TestAlertRules(t *testing.T) {
	n := NodeInfo{ID: "n1", Hostname: "gpu-1", Region: "Johor", Jurisdiction: "MY", Leased: true}
	xid := func(code int64) *fleet.Sample {
		return &fleet.Sample{Events: []fleet.Event{{Time: t0, Kind: fleet.EventXID, Device: 3, Code: code}}}
	}
	util := func(u ...float64) *fleet.Sample {
		s := &fleet.Sample{}
		for i, v := range u {
			s.Devices = append(s.Devices, dev(i, float64(fleet.MetricUtil), v))
		}
		return s
	}
	def := DefaultRules()
	noIdle := def
	noIdle.IdleAfter = 0
	custom := def
	custom.CriticalXIDs = []int64{13}
	custom.TempAbove = 0
	for _, tc := range []struct {
		name  string
		rules Rules
		steps []step
	}{
		{"critical xid held then expires", def, []step{
			{at: 0, sample: xid(79), want: []string{"xid/n1/3/79"}},
			{at: 30 * time.Minute, sample: util(0.9), want: []string{"xid/n1/3/79"}},
			{at: 61 * time.Minute, sample: util(0.9)},
		}},
		{"non-critical xid ignored", def, []step{{sample: xid(13)}}},
		{"configured xid list", custom, []step{{sample: xid(13), want: []string{"xid/n1/3/13"}}, {at: time.Second, sample: xid(79), want: []string{"xid/n1/3/13"}}}},
		{"uncorrectable ecc", def, []step{
			{sample: &fleet.Sample{Devices: []fleet.DeviceSample{dev(1, float64(fleet.MetricECCUncorrected), 2)}}, want: []string{"ecc/n1/1"}},
			{at: time.Second, sample: &fleet.Sample{Devices: []fleet.DeviceSample{dev(1, float64(fleet.MetricECCUncorrected), 0)}}},
		}},
		{"ecc rule off", func() Rules { r := def; r.ECCUncorrected = false; return r }(), []step{
			{sample: &fleet.Sample{Devices: []fleet.DeviceSample{dev(1, float64(fleet.MetricECCUncorrected), 2)}}},
		}},
		{"thermal throttling", def, []step{
			{sample: &fleet.Sample{Devices: []fleet.DeviceSample{dev(0, float64(fleet.MetricThrottle), 0x40, float64(fleet.MetricTemp), 70)}}, want: []string{"thermal/n1/0"}},
			{at: time.Second, sample: &fleet.Sample{Devices: []fleet.DeviceSample{dev(0, float64(fleet.MetricThrottle), 0x4, float64(fleet.MetricTemp), 70)}}},
		}},
		{"temperature above threshold", def, []step{
			{sample: &fleet.Sample{Devices: []fleet.DeviceSample{dev(2, float64(fleet.MetricTemp), 90)}}},
			{at: time.Second, sample: &fleet.Sample{Devices: []fleet.DeviceSample{dev(2, float64(fleet.MetricTemp), 91)}}, want: []string{"thermal/n1/2"}},
		}},
		{"offline longer than 90 s by default", def, []step{
			{sample: util(0.5)},
			{at: 30 * time.Second, state: "offline"},
			{at: 119 * time.Second, state: "offline"},
			{at: 120 * time.Second, state: "offline", want: []string{"offline/n1"}},
			{at: 7 * time.Minute, state: "online"},
		}},
		{"lease idle longer than N hours", def, []step{
			{at: 0, sample: util(0.01, 0.04)},
			{at: 119 * time.Minute, sample: util(0.0, 0.02)},
			{at: 120 * time.Minute, sample: util(0.0, 0.02), want: []string{"idle/n1"}},
			{at: 121 * time.Minute, sample: util(0.0, 0.30)},
			{at: 122 * time.Minute, sample: util(0.0, 0.0)},
		}},
		{"idle rule off", noIdle, []step{{sample: util(0)}, {at: 10 * time.Hour, sample: util(0)}}},
	} {
		t.Run(tc.name, func(t *testing.T) { run(t, tc.rules, n, tc.steps) })
	}
}

func TestIdleNeedsALease(t *testing.T) {
	r := DefaultRules()
	var tr NodeTracker
	n := NodeInfo{ID: "n1", Leased: false}
	for _, at := range []time.Duration{0, 3 * time.Hour} {
		s := &fleet.Sample{Time: t0.Add(at), Devices: []fleet.DeviceSample{dev(0, float64(fleet.MetricUtil), 0)}}
		r.Observe(&tr, s)
	}
	if cs := r.Conditions(&tr, n, t0.Add(3*time.Hour), nil); len(cs) != 0 {
		t.Fatalf("unleased idle node raised %v", ids(cs))
	}
}

func TestBudget(t *testing.T) {
	r := DefaultRules()
	for _, tc := range []struct {
		spent, budget int64
		want          []string
	}{
		{799_999, 1_000_000, nil},
		{800_000, 1_000_000, []string{"budget/region/Johor/80"}},
		{1_000_000, 1_000_000, []string{"budget/region/Johor/80", "budget/region/Johor/100"}},
		{5, 0, nil},
	} {
		got := ids(r.Budget("region", "Johor", tc.spent, tc.budget, "USD", nil))
		if tc.want == nil {
			tc.want = []string{}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Budget(%d of %d) = %q, want %q", tc.spent, tc.budget, got, tc.want)
		}
	}
}

func TestPaidButBlindAndSourcesDown(t *testing.T) {
	r := DefaultRules()
	nvml := fleet.SourceStatus{Name: "nvml", Reason: "driver/library version mismatch"}
	for _, tc := range []struct {
		name    string
		n       NodeInfo
		offline bool
		want    []string
	}{
		{"all visible", NodeInfo{ID: "n1", Leased: true, Billed: 8, Visible: 8}, false, []string{}},
		{"NVML failed", NodeInfo{ID: "n1", Leased: true, Billed: 8, SourcesDown: []fleet.SourceStatus{nvml}}, false, []string{"blind/n1", "source/n1/nvml"}},
		{"one lost", NodeInfo{ID: "n1", Leased: true, Billed: 8, Visible: 7}, false, []string{"blind/n1"}},
		{"not leased: nothing paid", NodeInfo{ID: "n1", Billed: 8}, false, []string{}},
		{"offline says it all", NodeInfo{ID: "n1", Leased: true, Billed: 8, SourcesDown: []fleet.SourceStatus{nvml}}, true, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr NodeTracker
			if tc.offline {
				r.SetState(&tr, "offline", t0)
			}
			if got := ids(r.Conditions(&tr, tc.n, t0.Add(time.Minute), nil)); !slices.Equal(got, tc.want) {
				t.Fatalf("conditions %q, want %q", got, tc.want)
			}
		})
	}
}
