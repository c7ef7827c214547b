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
	// b binds keys, shown in the help as k; one binds a single key, shown
	// as itself.
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	one := func(k, desc string) key.Binding { return b([]string{k}, k, desc) }
	return KeyMap{
		Fleet:     one("1", "fleet"),
		Nodes:     one("2", "nodes"),
		Node:      one("3", "node"),
		Jobs:      one("4", "jobs"),
		Cost:      one("5", "cost"),
		Alerts:    one("6", "alerts"),
		Job:       one("7", "job"),
		NextView:  one("tab", "view"),
		PrevView:  one("shift+tab", "previous view"),
		Up:        b([]string{"up", "k"}, "↑/k", "up"),
		Down:      b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:    b([]string{"pgup", "ctrl+u"}, "pgup", "page up"),
		PageDown:  b([]string{"pgdown", "ctrl+d", "space"}, "pgdn", "page down"),
		Top:       b([]string{"home", "g"}, "g", "top"),
		Bottom:    b([]string{"end", "G"}, "G", "bottom"),
		Enter:     one("enter", "open"),
		Back:      b([]string{"esc", "backspace"}, "esc", "back"),
		Filter:    one("/", "filter"),
		Sort:      one("s", "sort"),
		Reverse:   one("S", "reverse sort"),
		Command:   one(":", "jump"),
		Copy:      one("y", "copy id"),
		Ack:       one("a", "acknowledge"),
		Silence:   one("x", "silence 1h"),
		RangeDown: one("[", "shorter history"),
		RangeUp:   one("]", "longer history"),
		Help:      one("?", "help"),
		Quit:      b([]string{"q", "ctrl+c"}, "q", "quit"),
		Cancel:    one("esc", "cancel"),
		Accept:    one("enter", "apply"),
		Interrupt: one("ctrl+c", "quit"),
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
