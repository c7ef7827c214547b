package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleettop/fleettop/aggregator/insight"
	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/exporters/report"
	"github.com/fleettop/fleettop/store"
)

type reportOptions struct {
	dataDir, since, until, by, format, currency, config, timezone string
}

func newReportCmd() *cobra.Command {
	var o reportOptions
	c := &cobra.Command{
		Use:   "report --data-dir DIR --since 7d --by region|provider|model|team|job --format csv|md|json",
		Short: "Report GPU-hours and spend from the aggregator's ledger",
		Long: `Report, per group, GPU-hours leased and used, spend, idle spend, spend on
leased GPUs that did not report ("paid but dark") and the effective price per
used GPU-hour, from the cost ledger in the aggregator's data directory. It
reads the database read-only, also while the aggregator runs.

The ledger is kept per UTC hour: --since is rounded down to the hour, and
--until up to it. "today", "month" and dates are in the aggregator's time zone
(its config's timezone:, UTC by default) unless --timezone says otherwise.
The report includes everything up to the aggregator's last commit (about a
second behind while it runs): each lease accrues up to it, and the last few
minutes' spend counts as its node's unattributed line until the ledger
attributes it to jobs (at most five minutes later). Money is converted into the display currency with the rates of
--config (the aggregator's config file), or else those the aggregator last
ran with; without rates, each currency gets its own lines.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runReport(c, o) },
	}
	f := c.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "the aggregator's data directory (holding fleettop.db)")
	f.StringVar(&o.since, "since", "7d", "start: today, month, a duration back from --until (7d, 36h) or a time (2026-03-01, RFC 3339)")
	f.StringVar(&o.until, "until", "", "end: a time (2026-03-31, RFC 3339) or a duration back from now; default now")
	f.StringVar(&o.by, "by", "region", "group by region, provider, model, team, job or node")
	f.StringVar(&o.format, "format", "csv", "output format: csv, md or json")
	f.StringVar(&o.currency, "currency", "", "display currency (default: the config's or the aggregator's)")
	f.StringVar(&o.config, "config", "", "the aggregator's config file, for its display currency, rates and time zone")
	f.StringVar(&o.timezone, "timezone", "", "time zone of today, month and dates (default: the config's or the aggregator's, else UTC)")
	return c
}

func runReport(c *cobra.Command, o reportOptions) error {
	if o.dataDir == "" {
		return usagef("give --data-dir DIR, the aggregator's data directory")
	}
	if !slices.Contains(store.GroupKeys(), o.by) {
		return usagef("--by %q is not one of %s", o.by, strings.Join(store.GroupKeys(), ", "))
	}
	if !slices.Contains(report.Formats, o.format) {
		return usagef("--format %q is not one of %s", o.format, strings.Join(report.Formats, ", "))
	}
	path := filepath.Join(o.dataDir, store.FileName)
	if _, err := os.Stat(path); err != nil {
		return usagef("no fleettop database in %s: give the aggregator's --data-dir", o.dataDir)
	}
	st, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer st.Close()
	ctx := c.Context()
	rates, loc, err := reportRates(c, st, o)
	if err != nil {
		return err
	}
	// "now" on the aggregator's clock: a demo's simulated day may not be
	// the wall clock's.
	now, err := st.ClockAt(ctx, time.Now())
	if err != nil {
		return err
	}
	until := now
	if o.until != "" {
		t, err := parseWhen(o.until, now, loc)
		if err != nil {
			return usagef("--until %q: %v", o.until, err)
		}
		until = t
	}
	since, err := parseWhen(o.since, until, loc)
	if err != nil {
		return usagef("--since %q: %v", o.since, err)
	}
	from, to := store.HourFloor(since), store.HourFloor(until)
	if until.After(to) {
		to = to.Add(time.Hour) // the hour in progress counts up to now
	}
	if !from.Before(to) {
		return usagef("--since must be before --until")
	}
	us, err := st.Usage(ctx, o.by, from, to)
	if err != nil {
		return err
	}
	r, err := report.Build(o.by, from, to, us, rates)
	if err != nil {
		var mr *cost.MissingRateError
		if errors.As(err, &mr) {
			return usagef("%v: give --config with the aggregator's rates table, or leave out --currency", err)
		}
		return err
	}
	return report.Write(c.OutOrStdout(), r, o.format)
}

// reportRates picks the rate table and time zone: --config's, else the ones
// the aggregator stored; --currency rebases the rates, --timezone replaces
// the zone. nil rates: report each currency on its own.
func reportRates(c *cobra.Command, st *store.Store, o reportOptions) (*cost.Rates, *time.Location, error) {
	var display string
	loc := time.UTC
	decimals := map[string]string{}
	if o.config != "" {
		cfg, err := insight.LoadConfig(o.config)
		if err != nil {
			return nil, nil, usagef("config: %v", err)
		}
		display = cfg.Currency
		for cur, r := range cfg.RateTable {
			decimals[cur] = r
		}
		if cfg.Location != nil {
			loc = cfg.Location
		}
	} else {
		d, ok, err := st.Display(c.Context())
		if err != nil {
			return nil, nil, err
		}
		if ok {
			display, decimals = d.Currency, d.Rates
			if d.TimeZone != "" {
				if l, err := insight.LoadZone(d.TimeZone); err == nil {
					loc = l
				}
			}
		}
	}
	if o.timezone != "" {
		l, err := insight.LoadZone(o.timezone)
		if err != nil {
			return nil, nil, usagef("--timezone: %v", err)
		}
		loc = l
	}
	rates, err := parseRates(display, decimals, o)
	return rates, loc, err
}

func parseRates(display string, decimals map[string]string, o reportOptions) (*cost.Rates, error) {
	if display == "" && o.currency == "" {
		return nil, nil
	}
	if display == "" {
		display = o.currency
	}
	rates, err := cost.ParseRates(display, decimals)
	if err != nil {
		return nil, usagef("rates: %v", err)
	}
	if o.currency != "" {
		if rates, err = rates.Rebase(o.currency); err != nil {
			return nil, usagef("--currency %s: %v", o.currency, err)
		}
	}
	return &rates, nil
}

// parseWhen reads a time (2006-01-02, RFC 3339) or a duration back from ref
// (7d, 2w, 36h); today, month and dates are in loc.
func parseWhen(s string, ref time.Time, loc *time.Location) (time.Time, error) {
	switch u := ref.In(loc); s {
	case "today":
		return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, loc), nil
	case "month":
		return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, loc), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	mult := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		mult = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		mult = 7 * 24 * time.Hour
	}
	if mult > 0 {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 16)
		if err != nil {
			return time.Time{}, errors.New("want a time (2026-03-01) or a duration such as 7d, 2w or 36h")
		}
		return ref.Add(-time.Duration(n) * mult), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, errors.New("want a time (2026-03-01) or a duration such as 7d, 2w or 36h")
	}
	return ref.Add(-d), nil
}
