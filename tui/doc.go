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
// document about the row with id in the latest snapshot, for y to copy.
type docPage[R any] struct {
	sh    *shared
	doc   doc
	title string
	id    string
	row   *R // the row with id in the latest snapshot; nil when it has none
	// find looks a row up by id in a snapshot (nil when absent); first is
	// the id shown until one is chosen ("" when the snapshot has none).
	find  func(s *Snapshot, id string) *R
	first func(s *Snapshot) string
}

func newDocPage[R any](sh *shared, title string, find func(*Snapshot, string) *R, first func(*Snapshot) string) docPage[R] {
	return docPage[R]{sh: sh, title: title, find: find, first: first}
}

func (p *docPage[R]) Title() string { return p.title }

// Show selects the row with id, scrolled back to the top when it is
// another one.
func (p *docPage[R]) Show(id string) {
	if id != p.id {
		p.doc.offset = 0
	}
	p.id = id
	p.SetData(p.sh.snap)
}

// SetData finds the row shown in s: the one chosen, or while none is, the
// first.
func (p *docPage[R]) SetData(s *Snapshot) {
	p.row = nil
	if s == nil {
		return
	}
	if p.id == "" {
		p.id = p.first(s)
	}
	p.row = p.find(s, p.id)
}

func (p *docPage[R]) SetSize(w, h int) { p.doc.w, p.doc.h = w, h }

// Selected is the id of what the view shows, for y.
func (p *docPage[R]) Selected() string { return p.id }

func (p *docPage[R]) Update(msg tea.Msg, km *KeyMap) tea.Cmd {
	p.doc.update(msg, km)
	return nil
}
