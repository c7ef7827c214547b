package aggregator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	ts, err := ParseTokens(strings.NewReader(testTokens), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		secret string
		name   string
		role   Role
		node   string
		allow  bool
	}{
		{secretAll, "fleet", RoleCollector, "anything", true},
		{secretGPU, "gpus", RoleCollector, "gpu-7", true},
		{secretGPU, "gpus", RoleCollector, "cpu-7", false},
		{secretViewer, "ops", RoleViewer, "gpu-7", false},
		{"not-a-token", "", "", "", false},
		{secretAll + "x", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, tc := range cases {
		tok := ts.lookup(tc.secret)
		if tc.name == "" {
			if tok != nil {
				t.Errorf("%q matched token %q", tc.secret, tok.Name)
			}
			continue
		}
		if tok == nil || tok.Name != tc.name || tok.Role != tc.role {
			t.Fatalf("%q: got %+v", tc.secret, tok)
		}
		if got := tok.AllowsNode(tc.node); got != tc.allow {
			t.Errorf("%s allows %s: %v, want %v", tc.name, tc.node, got, tc.allow)
		}
	}
}

func TestParseTokensErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "f: no tokens"},
		{"# only a comment\n", "f: no tokens"},
		{"collector a\n", "f:1: want \"ROLE NAME SECRET [NODE-GLOB]\", got 2 fields"},
		{"\nadmin a secret123\n", "f:2: unknown role \"admin\""},
		{"viewer v secret123 node-*\n", "f:1: viewer token \"v\" takes no node glob"},
		{"collector c short\n", "f:1: secret of token \"c\" is shorter than 8 characters"},
		{"collector c secret123 [\n", "f:1: bad node glob \"[\""},
		{"collector c secret123\nviewer v secret123\n", "f:2: token \"v\" reuses the secret of line 1"},
		{"collector c secret123 a b\n", "f:1: want"},
	}
	for _, tc := range cases {
		_, err := ParseTokens(strings.NewReader(tc.in), "f")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want prefix %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret123") {
			t.Errorf("%q: error leaks the secret: %v", tc.in, err)
		}
	}
}

func TestBearer(t *testing.T) {
	cases := []struct{ h, want string }{
		{"Bearer abc", "abc"},
		{"bearer  abc ", "abc"},
		{"Basic abc", ""},
		{"Bearer", ""},
		{"", ""},
	}
	for _, tc := range cases {
		if got, _ := bearer(tc.h); got != tc.want {
			t.Errorf("bearer(%q) = %q, want %q", tc.h, got, tc.want)
		}
	}
}

// FuzzParseTokens: the token file is outside input; parsing never panics,
// and a parsed file's tokens are all usable.
func FuzzParseTokens(f *testing.F) {
	f.Add(testTokens)
	f.Add("collector c secret123 [\n")
	f.Add("viewer v secret123 # comment\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		ts, err := ParseTokens(strings.NewReader(in), "f")
		if err != nil {
			return
		}
		for _, tok := range ts.list {
			if tok.Role != RoleCollector && tok.Role != RoleViewer && tok.Role != RoleOperator {
				t.Fatalf("role %q", tok.Role)
			}
			tok.AllowsNode("x")
		}
	})
}

// A token file other users can read is refused, with the chmod that fixes it.
func TestLoadTokensRefusesWorldReadable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte("collector fleet c0llector-secret *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if _, err := LoadTokens(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadTokens(0644) = %v, want a refusal with the chmod 600 hint", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(p); err != nil {
		t.Fatalf("LoadTokens(0600) = %v", err)
	}
}
