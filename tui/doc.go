package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// doc is a vertically scrolling document of pre-rendered lines.
type doc struct {
	w, h   int
	offset int
	lines  int
}

func (d *doc) update(msg tea.Msg, km *KeyMap) {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		switch {
		case key.Matches(msg, km.Up):
			d.offset--
		case key.Matches(msg, km.Down):
			d.offset++
		case key.Matches(msg, km.PageUp):
			d.offset -= max(d.h-1, 1)
		case key.Matches(msg, km.PageDown):
			d.offset += max(d.h-1, 1)
		case key.Matches(msg, km.Top):
			d.offset = 0
		case key.Matches(msg, km.Bottom):
			d.offset = d.lines
		}
	case tea.MouseWheelMsg:
		switch msg.Button {
		case tea.MouseWheelUp:
			d.offset -= 3
		case tea.MouseWheelDown:
			d.offset += 3
		}
	}
	d.clamp()
}

func (d *doc) clamp() {
	d.offset = max(0, min(d.offset, d.lines-d.h))
}

// window returns the visible part of lines.
func (d *doc) window(lines []string) string {
	d.lines = len(lines)
	d.clamp()
	end := min(d.offset+d.h, len(lines))
	return strings.Join(lines[d.offset:end], "\n")
}

// docPage is what the one-thing views (Node, Job) share: a scrolling
// document about the thing with id, for y to copy.
type docPage struct {
	sh  *shared
	doc doc
	id  string
}

// show selects the thing with id, scrolled back to the top when it is
// another one.
func (p *docPage) show(id string) {
	if id != p.id {
		p.doc.offset = 0
	}
	p.id = id
}

func (p *docPage) SetSize(w, h int) { p.doc.w, p.doc.h = w, h }

// Selected is the id of what the view shows, for y.
func (p *docPage) Selected() string { return p.id }

func (p *docPage) Update(msg tea.Msg, km *KeyMap) tea.Cmd {
	p.doc.update(msg, km)
	return nil
}
