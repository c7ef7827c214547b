package report

import (
	"bytes"
	"encoding/csv"
	"testing"
)

// A group name a node controls (job, team, lease label) must not become a
// live spreadsheet formula, and must keep its text.
func TestCSVNeutralisesFormulas(t *testing.T) {
	groups := []string{`=HYPERLINK("http://evil","x")`, "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "plain", "a=b", ""}
	r := Report{By: "job"}
	for _, g := range groups {
		r.Lines = append(r.Lines, Line{Group: g, Currency: "USD", Spend: -1_500_000})
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, r); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range groups {
		cell := recs[i+1][0]
		want := g
		if g != "" && (g[0] == '=' || g[0] == '+' || g[0] == '-' || g[0] == '@' || g[0] == '\t' || g[0] == '\r') {
			want = "'" + g
		}
		if cell != want {
			t.Errorf("group %q written as %q, want %q", g, cell, want)
		}
		if spend := recs[i+1][6]; spend != "-1.500000" {
			t.Errorf("numeric cell changed: %q", spend)
		}
	}
}
