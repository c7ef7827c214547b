package wire

import (
	"reflect"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// A spool written by a protocol-1 collector still decodes after an upgrade,
// so unacknowledged records are resent, not lost.
func TestDecodesProtocol1Record(t *testing.T) {
	s := fleet.Sample{Seq: 9, Time: time.UnixMilli(1_770_000_000_123).UTC(), ProcsSet: true,
		Procs: []fleet.Process{{Device: 0, PID: 7, Name: "python", UsedMemory: 3 << 30}}}
	var d fleet.DeviceSample
	d.Index = 0
	d.Set(fleet.MetricUtil, 0.42)
	d.Set(fleet.MetricTemp, 61)
	d.Set(fleet.MetricEnergy, 123456.789)
	s.Devices = []fleet.DeviceSample{d}
	var st streamState
	st.reset(1)
	b, err := appendSample([]byte{recordMagic | 1}, &s, &st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got fleet.Sample
	if err := DecodeRecord(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("got %+v\nwant %+v", got, s)
	}
}
