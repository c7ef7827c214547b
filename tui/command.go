package tui

import (
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"
)

// The command bar (":"), like k9s: a verb and, for some verbs, a name, with
// tab completion from the fleet on screen.
//
//	:node NAME     open a node (id or hostname)
//	:job NAME      that job, or the jobs list narrowed to NAME
//	:region NAME   the nodes of a region
//	:fleet :nodes :jobs :cost :alerts   open a view
//	:q             quit

// commandVerbs are the verbs, in the order completion offers them.
var commandVerbs = []string{"node", "job", "region", "fleet", "nodes", "jobs", "cost", "alerts", "quit"}

// commandSuggestions lists every complete command line the snapshot
// allows, for the input's tab completion.
func commandSuggestions(s *Snapshot) []string {
	out := slices.Clone(commandVerbs)
	if s == nil {
		return out
	}
	for _, r := range s.Nodes {
		out = append(out, "node "+r.View.ID)
		if h := r.View.Hostname; h != "" && h != r.View.ID {
			out = append(out, "node "+h)
		}
	}
	for i := range s.Jobs {
		out = append(out, "job "+s.Jobs[i].ID)
	}
	for i := range s.Regions {
		out = append(out, "region "+s.Regions[i].Region)
	}
	return out
}

// runCommand turns a command line into what the root model does next; a
// non-empty problem is shown on the status line instead.
func runCommand(line string, s *Snapshot) (cmd tea.Cmd, problem string) {
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	needArg := func(what string) string { return ":" + verb + " needs a " + what + " (tab completes)" }
	switch verb {
	case "":
		return nil, ""
	case "q", "quit":
		return tea.Quit, ""
	case "fleet", "f":
		return nav(navMsg{page: pageFleet}), ""
	case "nodes", "no":
		return nav(navMsg{page: pageNodes, filter: strings.ToLower(arg)}), ""
	case "jobs":
		return nav(navMsg{page: pageJobs, filter: strings.ToLower(arg)}), ""
	case "cost", "costs":
		return nav(navMsg{page: pageCost}), ""
	case "alerts", "alert", "a":
		return nav(navMsg{page: pageAlerts, filter: strings.ToLower(arg)}), ""
	case "node", "n":
		if arg == "" {
			return nil, needArg("node id or hostname")
		}
		if r := findNode(s, arg); r != nil {
			return nav(navMsg{page: pageNode, node: r.View.ID}), ""
		}
		// Not in the rows on screen: the Node view asks for it by id.
		return nav(navMsg{page: pageNode, node: arg}), ""
	case "job", "j":
		if arg == "" {
			return nil, needArg("job id")
		}
		if s != nil {
			for i := range s.Jobs {
				if strings.EqualFold(s.Jobs[i].ID, arg) {
					return nav(navMsg{page: pageJob, job: s.Jobs[i].ID}), ""
				}
			}
		}
		return nav(navMsg{page: pageJobs, filter: strings.ToLower(arg)}), ""
	case "region", "r":
		if arg == "" {
			return nil, needArg("region")
		}
		return nav(navMsg{page: pageNodes, filter: strings.ToLower(arg)}), ""
	}
	return nil, "unknown command :" + verb + " (try :node, :job, :region, :alerts, :cost)"
}

// findNode finds a node by exact id, exact hostname, then a unique prefix
// of either.
func findNode(s *Snapshot, name string) *NodeRow {
	if s == nil {
		return nil
	}
	if r := s.Node(name); r != nil {
		return r
	}
	var prefix []*NodeRow
	for _, r := range s.Nodes {
		if strings.EqualFold(r.View.Hostname, name) {
			return r
		}
		if strings.HasPrefix(r.View.ID, name) || strings.HasPrefix(r.View.Hostname, name) {
			prefix = append(prefix, r)
		}
	}
	if len(prefix) == 1 {
		return prefix[0]
	}
	return nil
}
