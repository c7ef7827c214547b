package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/fleettop/fleettop/internal/secretfile"
	"github.com/fleettop/fleettop/tui"
)

// runDefaultTUI runs for plain `fleettop`: the TUI from the user's config file.
func runDefaultTUI(cmd *cobra.Command, _ []string) error {
	path, err := tuiConfigPath()
	if err != nil {
		return err
	}
	o, err := loadTUIConfig(path, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	return tui.Run(cmd.Context(), o)
}

// tuiConfig is the viewer's config file, os.UserConfigDir()/fleettop/tui.yaml.
type tuiConfig struct {
	Currency string `yaml:"currency"`
	// Rates is deprecated and ignored: each aggregator converts money into
	// its display currency. Kept so that old files still load.
	Rates       map[string]string `yaml:"rates"`
	NoColor     bool              `yaml:"no_color"`
	Mouse       bool              `yaml:"mouse"`
	Aggregators []struct {
		URL       string `yaml:"url"`
		TokenFile string `yaml:"token_file"`
	} `yaml:"aggregators"`
}

const tuiConfigExample = `aggregators: [{url: "https://agg.example:8443", token_file: "~/.config/fleettop/viewer.token"}]`

func tuiConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", usagef("cannot find your config directory (%v): run 'fleettop tui --aggregator URL' instead", err)
	}
	return filepath.Join(dir, "fleettop", "tui.yaml"), nil
}

// loadTUIConfig reads the viewer config; a missing or empty file is a usage
// error that says what to write. Deprecated keys are noted on warn.
func loadTUIConfig(path string, warn io.Writer) (tui.Options, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tui.Options{}, usagef("no viewer config: write %s with a line like %s (or run 'fleettop tui --aggregator URL')", path, tuiConfigExample)
	}
	if err != nil {
		return tui.Options{}, usagef("cannot read %s: %v", path, err)
	}
	var c tuiConfig
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		return tui.Options{}, usagef("%s: %s", path, strings.TrimSpace(yaml.FormatError(err, false, true)))
	}
	if len(c.Aggregators) == 0 {
		return tui.Options{}, usagef("%s lists no aggregators: add a line like %s", path, tuiConfigExample)
	}
	if len(c.Rates) > 0 {
		fmt.Fprintf(warn, "fleettop: %s: rates: is deprecated and ignored: the aggregators convert money into their display currency (set rates: in the aggregator's config); remove it from this file\n", path)
	}
	o := tui.Options{Currency: c.Currency, NoColor: c.NoColor, Mouse: c.Mouse}
	for i, a := range c.Aggregators {
		if a.URL == "" {
			return tui.Options{}, usagef("%s: aggregator %d has no url", path, i+1)
		}
		tok, err := viewerToken(expandHome(a.TokenFile))
		if err != nil {
			return tui.Options{}, err
		}
		o.Aggregators = append(o.Aggregators, tui.Endpoint{URL: a.URL, Token: tok})
	}
	return o, nil
}

// viewerToken reads a token file, or FLEETTOP_TOKEN when file is "".
func viewerToken(file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv("FLEETTOP_TOKEN")), nil
	}
	b, err := secretfile.ReadFile(file)
	if errors.Is(err, secretfile.ErrTooOpen) {
		return "", usagef("viewer token file: %v", err)
	}
	if err != nil {
		return "", usagef("cannot read the viewer token file %s: %v", file, errors.Unwrap(err))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", usagef("the viewer token file %s is empty", file)
	}
	if strings.ContainsAny(tok, " \t\n") {
		// Most likely the aggregator's tokens file (ROLE NAME SECRET lines).
		return "", usagef("%s holds several words or lines; a viewer token file holds only the secret. "+
			"If it is the aggregator's tokens file, put the secret of its viewer line alone in a file (chmod 600) and pass that", file)
	}
	return tok, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

func newTUICmd() *cobra.Command {
	var (
		aggs       []string
		tokenFiles []string
		currency   string
		noColor    bool
		mouse      bool
	)
	c := &cobra.Command{
		Use:   "tui --aggregator URL [--aggregator URL ...] [--token-file F]",
		Short: "Open the terminal UI on one or more aggregators",
		Long: `Open the terminal UI: fleet by region, nodes, one node's GPUs, jobs and where
they run, cost and alerts. --aggregator may repeat (one per jurisdiction); the
fleets are shown as one. The viewer token comes from --token-file (one for all
aggregators, or one per aggregator in the same order) or FLEETTOP_TOKEN.
Without --aggregator, the aggregators of the config file are used
(` + "`<config dir>/fleettop/tui.yaml`" + `).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o tui.Options
			if len(aggs) == 0 {
				path, err := tuiConfigPath()
				if err != nil {
					return err
				}
				if o, err = loadTUIConfig(path, cmd.ErrOrStderr()); err != nil {
					return err
				}
			} else {
				if len(tokenFiles) > 1 && len(tokenFiles) != len(aggs) {
					return usagef("give one --token-file for all aggregators or one per --aggregator (%d aggregators, %d token files)", len(aggs), len(tokenFiles))
				}
				for i, u := range aggs {
					file := ""
					switch len(tokenFiles) {
					case 1:
						file = tokenFiles[0]
					case len(aggs):
						file = tokenFiles[i]
					}
					tok, err := viewerToken(file)
					if err != nil {
						return err
					}
					o.Aggregators = append(o.Aggregators, tui.Endpoint{URL: u, Token: tok})
				}
			}
			if currency != "" {
				o.Currency = currency
			}
			o.NoColor = o.NoColor || noColor
			o.Mouse = o.Mouse || mouse
			if err := tui.Run(cmd.Context(), o); err != nil {
				if strings.Contains(err.Error(), "aggregator URL") {
					return usagef("%v", err)
				}
				return fmt.Errorf("tui: %w", err)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&aggs, "aggregator", nil, "aggregator base URL, e.g. https://agg-sg.example:8443 (repeatable)")
	f.StringArrayVar(&tokenFiles, "token-file", nil, "file holding the viewer token (default: $FLEETTOP_TOKEN)")
	f.StringVar(&currency, "currency", "", "display currency code (default: the aggregators')")
	f.BoolVar(&noColor, "no-color", false, "no colours (also when NO_COLOR is set)")
	f.BoolVar(&mouse, "mouse", false, "capture the mouse for wheel scrolling (then text cannot be selected without shift)")
	return c
}
