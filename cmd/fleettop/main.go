// Command fleettop is the single fleettop binary: collector, aggregator,
// terminal UI, simulated fleet and reports.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// usageError marks a mistake in how fleettop was called (bad flag, bad
// config): it is printed as one sentence and exits 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fleettop",
		Short:         "See how busy, how costly and where every leased GPU is",
		Long:          "fleettop watches leased GPU and NPU fleets across regions: utilisation, cost, job location and data residency.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	// Plain `fleettop` opens the TUI from the user's config file.
	root.RunE = runDefaultTUI
	root.AddCommand(
		newTUICmd(),
		newAggregatorCmd(),
		newCollectorCmd(),
		newMockCmd(),
		newDemoCmd(),
		newReportCmd(),
		newVersionCmd(),
	)
	return root
}

func main() {
	startProfiling()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleettop: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
