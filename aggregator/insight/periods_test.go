package insight

import (
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Teams are a partition of the fleet's spend today and this month, to the
// micro-unit: what no team's job held (idle GPUs, dark time) is unattributed.
func TestTeamsPartitionSpend(t *testing.T) {
	e := fixtureEngine(t)
	sum, _, _ := e.Summarize(now.Add(10 * time.Minute)) // ten minutes dark at the end
	by := map[string]int64{}
	teams := 0
	for _, c := range sum.Costs {
		if c.By == "team" {
			by["today"] += c.SpendToday.Micros
			by["month"] += c.SpendMonth.Micros
			if c.SpendToday.Micros > 0 {
				teams++
			}
		}
	}
	if by["today"] != sum.SpendToday.Micros || by["month"] != sum.SpendMonth.Micros || teams < 2 {
		t.Fatalf("teams carry %d today and %d this month (%d teams with spend); the fleet %d and %d",
			by["today"], by["month"], teams, sum.SpendToday.Micros, sum.SpendMonth.Micros)
	}
}

// "Today" is the day in the configured time zone: in Singapore (UTC+8) a
// node running from 15:00 to 17:00 UTC spends only its last hour today.
func TestTodayInTimeZone(t *testing.T) {
	if _, err := time.LoadLocation("Asia/Singapore"); err != nil {
		t.Skip("no zoneinfo:", err)
	}
	cfg, err := ParseConfig([]byte("timezone: Asia/Singapore\n"), "aggregator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]byte("timezone: Asia/Kolkata\n"), "aggregator.yaml"); err == nil {
		t.Fatal("a half-hour zone was accepted; the ledger is kept per hour")
	}
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := fixtureNodes() // 2 GPUs at 2.85 USD per GPU-hour
	start := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
	for i := 0; i <= 240; i++ {
		e.Observe(sg, 0, &fleet.Sample{Seq: uint64(i + 1), Time: start.Add(time.Duration(i) * 30 * time.Second),
			Devices: []fleet.DeviceSample{util(0, 0.5), util(1, 0.5)}})
	}
	sum, _, _ := e.Summarize(start.Add(2 * time.Hour))
	if sum.SpendToday.Micros != 2*2_850_000 || sum.SpendMonth.Micros != 4*2_850_000 {
		t.Fatalf("today %d, month %d micro-USD; want one hour (%d) today, two this month", sum.SpendToday.Micros, sum.SpendMonth.Micros, 2*2_850_000)
	}
}

// An hourly-billed lease charges each started hour ahead; the live figures
// say how much of spend today that is.
func TestPrepaidHoursAreStated(t *testing.T) {
	e, err := New(DefaultConfig(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := fixtureNodes() // 2 GPUs at 2.85 USD per GPU-hour
	sg.Lease.Billing = fleet.BillPerStartedHour
	start := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
	for i := 0; i <= 60; i++ { // 15:00 to 15:30
		e.Observe(sg, 0, &fleet.Sample{Seq: uint64(i + 1), Time: start.Add(time.Duration(i) * 30 * time.Second),
			Devices: []fleet.DeviceSample{util(0, 0.5), util(1, 0.5)}})
	}
	sum, _, _ := e.Summarize(start.Add(30 * time.Minute))
	if sum.SpendToday.Micros != 2*2_850_000 || sum.PrepaidToday.Micros != 2_850_000 {
		t.Fatalf("spend today %d, prepaid %d micro-USD; want the started hour (%d), half of it prepaid", sum.SpendToday.Micros, sum.PrepaidToday.Micros, 2*2_850_000)
	}
	sg.Lease.Billing = fleet.BillPerSecond
	e2, _ := New(DefaultConfig(), nil, nil)
	e2.Observe(sg, 0, &fleet.Sample{Seq: 1, Time: start})
	if sum, _, _ := e2.Summarize(start.Add(time.Minute)); sum.PrepaidToday.Micros != 0 {
		t.Fatalf("per-second lease shows %d prepaid", sum.PrepaidToday.Micros)
	}
}
