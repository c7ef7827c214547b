package wire

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"testing"
)

// watchShape sets every field of a Summary, a RegionRow and a NodeRow.
//
//go:embed testdata/watch-shape.json
var watchShape []byte

// TestWatchJSONShape: the summary and the region and node rows keep their
// JSON byte for byte (names, order, the embedded Burn standing flat where
// its fields stood), so viewers and /api/v1 readers see what they always
// have: each value in watchShape must decode and encode back to itself.
func TestWatchJSONShape(t *testing.T) {
	var golden map[string]json.RawMessage
	if err := json.Unmarshal(watchShape, &golden); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"Summary": new(Summary), "RegionRow": new(RegionRow), "NodeRow": new(NodeRow)} {
		var want bytes.Buffer
		if err := json.Compact(&want, golden[name]); err != nil || want.Len() == 0 {
			t.Fatalf("%s: no golden value (%v)", name, err)
		}
		if err := json.Unmarshal(want.Bytes(), v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s encodes as\n%s\nwant\n%s", name, got, want.Bytes())
		}
	}
}
