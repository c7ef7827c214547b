package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
)

// KeyMap is every key the TUI answers to, with its help text.
type KeyMap struct {
	Fleet, Nodes, Node, Jobs, Cost, Alerts  key.Binding
	Job                                     key.Binding
	NextView, PrevView                      key.Binding
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Enter, Back                             key.Binding
	Filter, Sort, Reverse                   key.Binding
	Command, Copy                           key.Binding
	Ack, Silence                            key.Binding
	RangeDown, RangeUp                      key.Binding
	Help, Quit                              key.Binding
	// While typing a filter or a command: Cancel drops it, Accept applies
	// it; Interrupt quits from anywhere.
	Cancel, Accept, Interrupt key.Binding
}

// DefaultKeyMap returns the standard bindings.
func DefaultKeyMap() KeyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return KeyMap{
		Fleet:     b([]string{"1"}, "1", "fleet"),
		Nodes:     b([]string{"2"}, "2", "nodes"),
		Node:      b([]string{"3"}, "3", "node"),
		Jobs:      b([]string{"4"}, "4", "jobs"),
		Cost:      b([]string{"5"}, "5", "cost"),
		Alerts:    b([]string{"6"}, "6", "alerts"),
		Job:       b([]string{"7"}, "7", "job"),
		NextView:  b([]string{"tab"}, "tab", "view"),
		PrevView:  b([]string{"shift+tab"}, "shift+tab", "previous view"),
		Up:        b([]string{"up", "k"}, "↑/k", "up"),
		Down:      b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:    b([]string{"pgup", "ctrl+u"}, "pgup", "page up"),
		PageDown:  b([]string{"pgdown", "ctrl+d", "space"}, "pgdn", "page down"),
		Top:       b([]string{"home", "g"}, "g", "top"),
		Bottom:    b([]string{"end", "G"}, "G", "bottom"),
		Enter:     b([]string{"enter"}, "enter", "open"),
		Back:      b([]string{"esc", "backspace"}, "esc", "back"),
		Filter:    b([]string{"/"}, "/", "filter"),
		Sort:      b([]string{"s"}, "s", "sort"),
		Reverse:   b([]string{"S"}, "S", "reverse sort"),
		Command:   b([]string{":"}, ":", "jump"),
		Copy:      b([]string{"y"}, "y", "copy id"),
		Ack:       b([]string{"a"}, "a", "acknowledge"),
		Silence:   b([]string{"x"}, "x", "silence 1h"),
		RangeDown: b([]string{"["}, "[", "shorter history"),
		RangeUp:   b([]string{"]"}, "]", "longer history"),
		Help:      b([]string{"?"}, "?", "help"),
		Quit:      b([]string{"q", "ctrl+c"}, "q", "quit"),
		Cancel:    b([]string{"esc"}, "esc", "cancel"),
		Accept:    b([]string{"enter"}, "enter", "apply"),
		Interrupt: b([]string{"ctrl+c"}, "ctrl+c", "quit"),
	}
}

// FullHelp is the ? screen, one column per group.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Fleet, k.Nodes, k.Node, k.Jobs, k.Cost, k.Alerts, k.Job, k.NextView, k.PrevView},
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Enter, k.Back, k.Filter, k.Sort, k.Reverse, k.Command, k.Copy, k.Help, k.Quit},
		{k.Ack, k.Silence, k.RangeDown, k.RangeUp},
	}
}

// page is the page (pageFleet … pageJob) that msg's key opens, or -1 when it opens none.
func (k KeyMap) page(msg fmt.Stringer) int {
	for p, b := range [numPages]key.Binding{pageFleet: k.Fleet, pageNodes: k.Nodes, pageNode: k.Node,
		pageJobs: k.Jobs, pageCost: k.Cost, pageAlerts: k.Alerts, pageJob: k.Job} {
		if key.Matches(msg, b) {
			return p
		}
	}
	return -1
}
