package prometheus

import (
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file is the one place where label names and values are made safe for
// the exposition and for remote_write: values become valid UTF-8 and are
// escaped, names are forced into [a-zA-Z_][a-zA-Z0-9_]*. Everything the
// exporter writes goes through newLabelSet.

// label is one name="value" pair.
type label struct{ name, value string }

// labelSet is one series' labels (without __name__), built once — per device
// on its node's Hello, per placement per scrape — in the forms the exporter
// writes: the text form for /metrics and, on first use, the protobuf form for
// remote_write. Only the text is kept (the pairs as well were about 400 B a
// device); the protobuf form is read back from it. A device's set holds its
// own labels and shares its node's (base): repeating them in every device's
// text was 190 B a device. The exposition does not need labels sorted, so the
// text writes the base's first; remote_write does, and its form sorts them.
type labelSet struct {
	text string    // `a="x",b="y"`, sorted by name, sanitised ("" when none)
	base *labelSet // labels shared with other sets, written first; nil: none
	pb   *labelsPB // nil until remote_write first asks
}

// labelsPB is a set's protobuf Label messages (TimeSeries field 1) before and
// after the slot where __name__ sorts.
type labelsPB struct{ before, after []byte }

// newLabelSet sanitises and sorts pairs (in place) and renders the text
// form.
func newLabelSet(pairs []label) *labelSet {
	ls := new(labelSet)
	ls.set(nil, pairs)
	return ls
}

// set makes ls the label set of base's labels and pairs, as newLabelSet.
// The names of pairs and base's must differ.
func (ls *labelSet) set(base *labelSet, pairs []label) {
	for i := range pairs {
		pairs[i].name = sanitizeName(pairs[i].name)
		pairs[i].value = sanitizeValue(pairs[i].value)
	}
	slices.SortStableFunc(pairs, func(a, b label) int { return strings.Compare(a.name, b.name) })
	*ls = labelSet{base: base}
	if len(pairs) == 0 {
		return
	}
	n := 0
	for _, p := range pairs {
		n += len(p.name) + len(p.value) + 4
	}
	b := make([]byte, 0, n)
	for i, p := range pairs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p.name...)
		b = append(b, '=', '"')
		b = appendEscaped(b, p.value)
		b = append(b, '"')
	}
	ls.text = string(b)
}

// empty reports whether the set has no labels at all.
func (ls *labelSet) empty() bool { return ls.text == "" && (ls.base == nil || ls.base.empty()) }

// appendText appends the set's text form, `{a="x",b="y"}`, or nothing when
// it has no labels.
func (ls *labelSet) appendText(b []byte) []byte {
	if ls.empty() {
		return b
	}
	b = append(b, '{')
	return append(ls.appendPairs(b), '}')
}

// appendPairs appends the set's labels without braces, its base's first.
func (ls *labelSet) appendPairs(b []byte) []byte {
	if ls.base != nil && !ls.base.empty() {
		b = ls.base.appendPairs(b)
		if ls.text != "" {
			b = append(b, ',')
		}
	}
	return append(b, ls.text...)
}

// eachLabel calls f with each name and value of the set, its base's first.
func (ls *labelSet) eachLabel(f func(name, value string)) {
	if ls.base != nil {
		ls.base.eachLabel(f)
	}
	eachLabel(ls.text, f)
}

// eachLabel calls f with each name and value of a text form made by set.
func eachLabel(text string, f func(name, value string)) {
	s := text
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=') // names are [a-zA-Z0-9_]
		name := s[:eq]
		s = s[eq+2:] // past `="`
		i, plain := 0, true
		for s[i] != '"' {
			if s[i] == '\\' {
				plain = false
				i++
			}
			i++
		}
		value := s[:i]
		if !plain {
			value = unescape(value)
		}
		f(name, value)
		s = strings.TrimPrefix(s[i+1:], ",")
	}
}

// unescape undoes appendEscaped.
func unescape(v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if c := v[i]; c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		if v[i] == 'n' {
			b = append(b, '\n')
		} else {
			b = append(b, v[i])
		}
	}
	return string(b)
}

// protobuf renders the remote_write form once, its labels sorted by name.
func (ls *labelSet) protobuf() *labelsPB {
	if ls.pb != nil {
		return ls.pb
	}
	var pairs []label
	ls.eachLabel(func(name, value string) { pairs = append(pairs, label{name, value}) })
	slices.SortFunc(pairs, func(a, b label) int { return strings.Compare(a.name, b.name) })
	ls.pb = new(labelsPB)
	for _, p := range pairs {
		if p.name < "__name__" {
			ls.pb.before = appendLabelPB(ls.pb.before, p.name, p.value)
		} else {
			ls.pb.after = appendLabelPB(ls.pb.after, p.name, p.value)
		}
	}
	return ls.pb
}

// appendLabelPB appends one Label message as TimeSeries field 1.
func appendLabelPB(b []byte, name, value string) []byte {
	n := protowire.SizeTag(1) + protowire.SizeBytes(len(name)) + protowire.SizeTag(2) + protowire.SizeBytes(len(value))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, value)
}

// sanitizeValue makes a label value valid UTF-8 (Prometheus rejects a scrape
// or a write request with anything else).
func sanitizeValue(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

// sanitizeName maps a label name onto [a-zA-Z_][a-zA-Z0-9_]*, replacing
// anything else with '_'; a name starting with "__" (reserved) gains a
// leading letter.
func sanitizeName(n string) string {
	ok := n != "" && !strings.HasPrefix(n, "__")
	for i := 0; ok && i < len(n); i++ {
		ok = validNameByte(n[i], i)
	}
	if ok {
		return n
	}
	b := []byte(n)
	for i := range b {
		if !validNameByte(b[i], i) {
			b[i] = '_'
		}
	}
	s := string(b)
	if s == "" || strings.HasPrefix(s, "__") {
		s = "l" + s
	}
	return s
}

func validNameByte(c byte, i int) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
}

// appendEscaped escapes a label value for the text formats: \ " and newline.
func appendEscaped(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\\\"\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

// escapeHelp escapes HELP text: \ and newline.
func escapeHelp(h string) string {
	return strings.NewReplacer("\\", `\\`, "\n", `\n`).Replace(h)
}
