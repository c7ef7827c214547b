package prometheus

import (
	"reflect"
	"testing"
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
		eachLabel(ls.text, func(n, v string) { got = append(got, label{n, v}) })
		if len(pairs) == 0 {
			pairs = nil
		}
		if !reflect.DeepEqual(got, pairs) {
			t.Errorf("%s: read back %q, want %q", ls.text, got, pairs)
		}
	}
}
