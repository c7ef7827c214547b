package collector

import (
	"fmt"
	"sort"
)

// Factory builds a source. It is called once per agent.
type Factory func() (Source, error)

// Registry maps source names to their factories. It is a value: each command
// (or test) builds its own, so there is no package-level state.
type Registry struct {
	factories map[string]Factory
	order     []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Register adds a source factory under name. Registering a name twice is a
// programming error and panics.
func (r *Registry) Register(name string, f Factory) {
	if _, dup := r.factories[name]; dup {
		panic(fmt.Sprintf("collector: source %q registered twice", name))
	}
	r.factories[name] = f
	r.order = append(r.order, name)
}

// Names returns the registered names in registration order.
func (r *Registry) Names() []string { return append([]string(nil), r.order...) }

// Build builds the named sources in the given order; with no names, every
// registered source in registration order.
func (r *Registry) Build(names ...string) ([]Source, error) {
	if len(names) == 0 {
		names = r.order
	}
	out := make([]Source, 0, len(names))
	for _, n := range names {
		f, ok := r.factories[n]
		if !ok {
			known := r.Names()
			sort.Strings(known)
			return nil, fmt.Errorf("unknown source %q (known: %v)", n, known)
		}
		s, err := f()
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", n, err)
		}
		out = append(out, s)
	}
	return out, nil
}
