package main

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// The pre-encoded frames must decode, after a live lead-in at any resume
// point, into a stream whose sequence rises by one a second and whose values
// come back to the first record's at every wrap, for both streams.
func TestTemplateFramesRepeatCleanly(t *testing.T) {
	for _, stream := range []string{"smooth", "mock"} {
		o := options{templates: 2, records: 5, perNode: 8, stream: stream}
		tmpls, err := buildTemplates(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, tm := range tmpls {
			enc, dec := wire.NewEncoder(), wire.NewDecoder()
			lead := tm.lead
			t1 := time.Unix(1_800_000_000, 0)
			lead[0].Seq, lead[0].Time = 1000, t1.Add(-time.Second)
			lead[1].Seq, lead[1].Time = 1001, t1
			b, err := enc.AppendFrame(nil, &wire.Samples{Samples: lead[:]})
			if err != nil {
				t.Fatal(err)
			}
			f, err := dec.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]fleet.DeviceSample(nil), f.(*wire.Samples).Samples[1].Devices...)
			for i := range 3 * len(tm.frames) {
				f, err := dec.Decode(tm.frames[i%len(tm.frames)])
				if err != nil {
					t.Fatalf("%s frame %d: %v", stream, i, err)
				}
				s := f.(*wire.Samples).Samples[0]
				if s.Seq != 1001+uint64(i)+1 {
					t.Fatalf("%s frame %d: seq %d, want %d", stream, i, s.Seq, 1001+uint64(i)+1)
				}
				if wantT := t1.Add(time.Duration(i+1) * time.Second); !s.Time.Equal(wantT) {
					t.Fatalf("%s frame %d: time %v, want %v", stream, i, s.Time, wantT)
				}
				if i%len(tm.frames) == len(tm.frames)-1 && !reflect.DeepEqual(s.Devices, want) {
					t.Fatalf("%s frame %d (wrap): devices differ from the first record's", stream, i)
				}
			}
		}
	}
}

func TestProcReaders(t *testing.T) {
	cpu, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if cpu < 0 {
		t.Fatalf("cpu %v", cpu)
	}
	st, err := procStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st["VmRSS"] <= 0 || st["RssAnon"] <= 0 {
		t.Fatalf("status without VmRSS/RssAnon: %v", st)
	}
}
