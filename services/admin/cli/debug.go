package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func debugCmd(g *Globals) *cobra.Command {
	var status, key string
	cmd := &cobra.Command{
		Use:   "debug SYNC [--status failed] [--key K]",
		Short: "Watch, live, the records a sync delivers and what the destination answers",
		Long: "debug streams each record delivered for the sync as it happens: key, op, status, request latency " +
			"and the destination's error; -o json adds the payload sent. Events are sampled (at most 200 a " +
			"second) and never slow the sync. Stop with Ctrl-C.",
		Args: cobra.ExactArgs(1),
	}
	out := outputFlag(cmd)
	cmd.Flags().StringVar(&status, "status", "", "only records with this status: delivered or failed")
	cmd.Flags().StringVar(&key, "key", "", "only the record with these key values, joined by commas")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			stream, err := c.Debug(cmd.Context(), &adminv1.DebugRequest{Sync: args[0], Status: status, Key: key})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(cmd.ErrOrStderr(), "watching sync %s; Ctrl-C to stop\n", args[0])
			for {
				ev, err := stream.Recv()
				if errors.Is(err, io.EOF) || cmd.Context().Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				if err := render(w, *out, ev, func(w io.Writer) error { return debugLine(w, ev) }); err != nil {
					return err
				}
			}
		})
	}
	return cmd
}

// debugLine prints an event on one line.
func debugLine(w io.Writer, ev *adminv1.DebugResponse) error {
	line := fmt.Sprintf("%s  %-6s %-9s key=%s  run=%s  %.1fms", ev.GetTime().AsTime().Format("15:04:05.000"),
		ev.GetOp(), ev.GetStatus(), ev.GetKey(), ev.GetRunId(), ev.GetLatencyMs())
	if ev.GetAttempts() > 1 {
		line += fmt.Sprintf("  attempts=%d", ev.GetAttempts())
	}
	if ev.GetError() != "" {
		line += "  error: " + ev.GetError()
	}
	for _, l := range ev.GetLogs() {
		line += "\n    log: " + l
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
