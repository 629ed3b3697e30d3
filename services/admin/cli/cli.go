// Package cli is the ebb command line as a thin client of the admin gRPC
// API: apply and plan a config file, inspect sources, destinations and
// syncs, trigger runs and read their outcomes.
package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// Globals are the settings every client command shares, filled by the root
// command's persistent flags --server (EBB_SERVER) and --token (EBB_TOKEN).
type Globals struct {
	Server string
	Token  string
}

// Commands returns the client commands, to add to the root command.
func Commands(g *Globals) []*cobra.Command {
	return []*cobra.Command{
		applyCmd(g),
		planCmd(g),
		syncCmd(g),
		runsCmd(g),
		sourcesCmd(g),
		destinationsCmd(g),
		debugCmd(g),
		recordsCmd(g),
		transformCmd(g),
	}
}

// Exit codes of `sync run --wait` besides 0 (the run succeeded) and 1 (any
// other error).
const (
	// ExitRunFailed: the run ended failed (or with records that failed).
	ExitRunFailed = 2
	// ExitAwaitingApproval: the run stopped at a safety check before
	// sending anything, and waits for `ebb runs approve` (or a cancel).
	ExitAwaitingApproval = 3
)

// exitError carries the process exit status for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process exit status for err, the error a command
// returned: 0 for nil, the run's outcome for `sync run --wait`, 1 otherwise.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}
