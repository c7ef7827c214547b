package prometheus

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// The protobuf form is read back from the text form: every value, escaped
// or not, comes back as sanitised.
func TestLabelTextReadsBack(t *testing.T) {
	for _, pairs := range [][]label{
		nil,
		{{"a", "x"}},
		{{"b", `q"u\o` + "\nte"}, {"a", ""}, {"c", `\`}, {"__bad name", "v,w=\"x\""}},
		{{"z", "bad\xffutf8"}, {"y", `"`}},
	} {
		ls := newLabelSet(pairs)
		var got []label
		ls.eachLabel(func(n, v string) { got = append(got, label{n, v}) })
		if len(pairs) == 0 {
			pairs = nil
		}
		if !reflect.DeepEqual(got, pairs) {
			t.Errorf("%s: read back %q, want %q", ls.text, got, pairs)
		}
	}
}

// A device's set writes its node's labels first in the text form (the
// exposition takes any order) and sorts all of them in the protobuf form
// (remote_write receivers refuse unsorted labels), __name__'s slot between
// before and after.
func TestSharedLabels(t *testing.T) {
	base := newLabelSet([]label{{"region", "Johor"}, {"Hostname", "h"}, {"node", "n-1"}})
	var ls labelSet
	ls.set(base, []label{{"gpu", "0"}, {"UUID", "GPU-1"}, {"pci_bus_id", "00:18.0"}})
	if got, want := string(ls.appendText(nil)), `{Hostname="h",node="n-1",region="Johor",UUID="GPU-1",gpu="0",pci_bus_id="00:18.0"}`; got != want {
		t.Errorf("text %s, want %s", got, want)
	}
	names := func(b []byte) []string {
		var out []string
		for len(b) > 0 {
			_, _, n := protowire.ConsumeTag(b)
			msg, m := protowire.ConsumeBytes(b[n:])
			b = b[n+m:]
			_, _, n = protowire.ConsumeTag(msg)
			name, _ := protowire.ConsumeBytes(msg[n:])
			out = append(out, string(name))
		}
		return out
	}
	pb := ls.protobuf()
	if got, want := names(pb.before), []string{"Hostname", "UUID"}; !reflect.DeepEqual(got, want) {
		t.Errorf("protobuf before __name__: %q, want %q", got, want)
	}
	if got, want := names(pb.after), []string{"gpu", "node", "pci_bus_id", "region"}; !reflect.DeepEqual(got, want) {
		t.Errorf("protobuf after __name__: %q, want %q", got, want)
	}
	var empty labelSet
	empty.set(newLabelSet(nil), nil)
	if got := string(empty.appendText(nil)); got != "" {
		t.Errorf("a set without labels writes %q, want nothing", got)
	}
}
