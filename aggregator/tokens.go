package aggregator

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/fleettop/fleettop/internal/secretfile"
)

// Role is what a token may do.
type Role string

// Token roles.
const (
	RoleCollector Role = "collector" // may send samples for nodes matching its glob
	RoleViewer    Role = "viewer"    // may read: watch stream, API, metrics
	RoleOperator  Role = "operator"  // may read, and acknowledge or silence alerts
)

// Can reports whether the token may act in role: an operator may do all a
// viewer may.
func (t *Token) Can(role Role) bool {
	return t.Role == role || (t.Role == RoleOperator && role == RoleViewer)
}

// minSecretLen is the shortest secret the token file accepts.
const minSecretLen = 8

// Token is one line of the token file. Its secret is kept only as a SHA-256
// digest so that it cannot leak through logs or %v.
type Token struct {
	Role     Role
	Name     string
	NodeGlob string // collector tokens: path.Match pattern over node ids
	digest   [sha256.Size]byte
}

// AllowsNode reports whether the token may send samples for node id.
func (t *Token) AllowsNode(id string) bool {
	if t.Role != RoleCollector {
		return false
	}
	ok, err := path.Match(t.NodeGlob, id)
	return err == nil && ok
}

// Tokens is the parsed token file.
type Tokens struct {
	list []Token
}

// Len returns the number of tokens.
func (ts *Tokens) Len() int { return len(ts.list) }

// LoadTokens reads a token file: one token per line, "ROLE NAME SECRET
// [NODE-GLOB]", role collector, viewer or operator, "#" starts a comment. A
// file other users can read is refused (see secretfile.Check).
func LoadTokens(p string) (*Tokens, error) {
	f, err := secretfile.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	defer f.Close()
	return ParseTokens(f, p)
}

// ParseTokens parses a token file read from r; name appears in errors as
// "name:line".
func ParseTokens(r io.Reader, name string) (*Tokens, error) {
	ts := &Tokens{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, a...))
		}
		if len(f) < 3 || len(f) > 4 {
			return nil, bad("want \"ROLE NAME SECRET [NODE-GLOB]\", got %d fields", len(f))
		}
		t := Token{Role: Role(f[0]), Name: f[1]}
		switch t.Role {
		case RoleCollector:
			t.NodeGlob = "*"
			if len(f) == 4 {
				t.NodeGlob = f[3]
			}
			if _, err := path.Match(t.NodeGlob, ""); err != nil {
				return nil, bad("bad node glob %q: %v", t.NodeGlob, err)
			}
		case RoleViewer, RoleOperator:
			if len(f) == 4 {
				return nil, bad("%s token %q takes no node glob", t.Role, t.Name)
			}
		default:
			return nil, bad("unknown role %q (want collector, viewer or operator)", f[0])
		}
		if len(f[2]) < minSecretLen {
			return nil, bad("secret of token %q is shorter than %d characters", t.Name, minSecretLen)
		}
		t.digest = sha256.Sum256([]byte(f[2]))
		if prev, dup := seen[t.digest]; dup {
			return nil, bad("token %q reuses the secret of line %d", t.Name, prev)
		}
		seen[t.digest] = line
		ts.list = append(ts.list, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(ts.list) == 0 {
		return nil, fmt.Errorf("%s: no tokens", name)
	}
	return ts, nil
}

// errNoToken is returned when a request carries no bearer token.
var errNoToken = errors.New("no bearer token")

// lookup finds the token whose secret is secret. It compares digests in
// constant time against every token, so timing tells nothing about which
// token (or how much of one) matched.
func (ts *Tokens) lookup(secret string) *Token {
	if ts == nil || secret == "" {
		return nil
	}
	d := sha256.Sum256([]byte(secret))
	found := -1
	for i := range ts.list {
		if subtle.ConstantTimeCompare(d[:], ts.list[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil
	}
	return &ts.list[found]
}

// bearer extracts the secret of an "Authorization: Bearer SECRET" header.
func bearer(h string) (string, error) {
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", errNoToken
	}
	return strings.TrimSpace(h[len(p):]), nil
}
