// Command ebb is Ebb in one binary: the CLI (a thin client of the admin gRPC
// API), `ebb serve` to run any of the services against a NATS server, and
// `ebb dev` to run everything in one process with an embedded NATS server.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ebb-etl/ebb/services/admin/cli"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ebb:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status, for commands such as
// `sync run --wait` whose status reports the run's outcome.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return cli.ExitCode(err)
}

// globalFlags are shared by the client commands.
type globalFlags = cli.Globals

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "ebb",
		Short:         "Ebb moves warehouse rows into the tools people work in",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.Server, "server", envOr("EBB_SERVER", "127.0.0.1:7070"), "admin API address (env EBB_SERVER)")
	root.PersistentFlags().StringVar(&g.Token, "token", os.Getenv("EBB_TOKEN"), "admin API bearer token (env EBB_TOKEN)")
	for _, newCmd := range []func(*globalFlags) *cobra.Command{
		newDevCmd,
		newServeCmd,
	} {
		root.AddCommand(newCmd(g))
	}
	root.AddCommand(cli.Commands(g)...)
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
