package tui

import (
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// Styles is every style the TUI uses, built once. Colours are the 16 basic
// ANSI colours (they look right on 16-colour terminals and cost the fewest
// bytes); with NO_COLOR only bold and reverse remain; Plain has no
// attributes at all (golden tests).
type Styles struct {
	App         lipgloss.Style
	Brand       lipgloss.Style
	TabActive   lipgloss.Style
	TabInactive lipgloss.Style
	Label       lipgloss.Style
	Value       lipgloss.Style
	Section     lipgloss.Style
	TableHeader lipgloss.Style
	Selected    lipgloss.Style
	Dim         lipgloss.Style
	OK          lipgloss.Style
	Warn        lipgloss.Style
	Crit        lipgloss.Style
	BarLow      lipgloss.Style
	BarMid      lipgloss.Style
	BarHigh     lipgloss.Style
	Spark       lipgloss.Style
	Footer      lipgloss.Style
	Help        help.Styles
	paints      map[*lipgloss.Style][2]string
}

// paint styles one line of text with st using escape codes worked out once
// in NewStyles (lipgloss's Render is too slow to call per cell).
func (s *Styles) paint(st *lipgloss.Style, text string) string {
	if p, ok := s.paints[st]; ok {
		if p[0] == "" && p[1] == "" {
			return text
		}
		return p[0] + text + p[1]
	}
	return st.Render(text)
}

// cachePaints records the prefix and suffix each style wraps text in.
func (s *Styles) cachePaints() *Styles {
	s.paints = map[*lipgloss.Style][2]string{}
	for _, p := range []*lipgloss.Style{&s.App, &s.Brand, &s.TabActive, &s.TabInactive, &s.Label, &s.Value,
		&s.Section, &s.TableHeader, &s.Selected, &s.Dim, &s.OK, &s.Warn, &s.Crit, &s.BarLow, &s.BarMid,
		&s.BarHigh, &s.Spark, &s.Footer} {
		out := p.Render("\x00")
		if i := strings.IndexByte(out, 0); i >= 0 && strings.Count(out, "\x00") == 1 {
			s.paints[p] = [2]string{out[:i], out[i+1:]}
		}
	}
	return s
}

// StyleMode picks how styles are built.
type StyleMode int

// Style modes.
const (
	StyleColor   StyleMode = iota // 16 ANSI colours
	StyleNoColor                  // NO_COLOR: attributes only
	StylePlain                    // no escape codes at all
)

// NewStyles builds the styles for mode.
func NewStyles(mode StyleMode) *Styles {
	n := lipgloss.NewStyle
	s := &Styles{}
	switch mode {
	case StylePlain:
		for _, p := range []*lipgloss.Style{&s.App, &s.Brand, &s.TabActive, &s.TabInactive, &s.Label, &s.Value,
			&s.Section, &s.TableHeader, &s.Selected, &s.Dim, &s.OK, &s.Warn, &s.Crit, &s.BarLow, &s.BarMid,
			&s.BarHigh, &s.Spark, &s.Footer} {
			*p = n()
		}
		s.Help = help.Styles{Ellipsis: n(), ShortKey: n(), ShortDesc: n(), ShortSeparator: n(),
			FullKey: n(), FullDesc: n(), FullSeparator: n()}
		return s.cachePaints()
	case StyleNoColor:
		s.App, s.Label, s.Value, s.Dim, s.OK, s.BarLow, s.BarMid, s.BarHigh, s.Spark, s.Footer =
			n(), n(), n(), n(), n(), n(), n(), n(), n(), n()
		s.Brand = n().Bold(true)
		s.TabActive = n().Bold(true).Reverse(true)
		s.TabInactive = n()
		s.Section = n().Bold(true)
		s.TableHeader = n().Bold(true)
		s.Selected = n().Reverse(true)
		s.Warn = n().Bold(true)
		s.Crit = n().Bold(true).Reverse(true)
		s.Help = help.Styles{Ellipsis: n(), ShortKey: n().Bold(true), ShortDesc: n(), ShortSeparator: n(),
			FullKey: n().Bold(true), FullDesc: n(), FullSeparator: n()}
		return s.cachePaints()
	}
	c := lipgloss.Color
	s.App = n()
	s.Brand = n().Bold(true).Foreground(c("6"))
	s.TabActive = n().Bold(true).Reverse(true)
	s.TabInactive = n().Foreground(c("7"))
	s.Label = n().Foreground(c("8"))
	s.Value = n().Bold(true)
	s.Section = n().Bold(true).Foreground(c("6"))
	s.TableHeader = n().Bold(true).Foreground(c("4"))
	s.Selected = n().Reverse(true)
	s.Dim = n().Foreground(c("8"))
	s.OK = n().Foreground(c("2"))
	s.Warn = n().Foreground(c("3"))
	s.Crit = n().Bold(true).Foreground(c("1"))
	s.BarLow = n().Foreground(c("4"))
	s.BarMid = n().Foreground(c("2"))
	s.BarHigh = n().Foreground(c("3"))
	s.Spark = n().Foreground(c("6"))
	s.Footer = n().Foreground(c("8"))
	s.Help = help.Styles{
		Ellipsis: n().Foreground(c("8")), ShortKey: n().Foreground(c("7")).Bold(true),
		ShortDesc: n().Foreground(c("8")), ShortSeparator: n().Foreground(c("8")),
		FullKey: n().Foreground(c("7")).Bold(true), FullDesc: n().Foreground(c("8")),
		FullSeparator: n().Foreground(c("8")),
	}
	return s.cachePaints()
}

// bar styles a utilisation bar by how busy it is: blue idle, green busy,
// yellow saturated.
func (s *Styles) bar(ratio float64, width int) string {
	b := Bar(ratio, width)
	switch {
	case ratio < 0.2 || ratio != ratio:
		return s.paint(&s.BarLow, b)
	case ratio < 0.9:
		return s.paint(&s.BarMid, b)
	default:
		return s.paint(&s.BarHigh, b)
	}
}
