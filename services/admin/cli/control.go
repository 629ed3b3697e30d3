package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func syncPauseCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pause NAME",
		Short: "Stop scheduling a sync and pause its active run",
		Long: "pause stops the sync's schedule and refuses manual runs; its active run stops at the next " +
			"batch boundary and keeps its checkpoint. `ebb sync resume` continues it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, func(c *client) error {
				resp, err := c.PauseSync(cmd.Context(), &adminv1.PauseSyncRequest{Sync: args[0]})
				if err != nil {
					return err
				}
				return reportControl(cmd.OutOrStdout(), "paused", args[0], resp.GetRun())
			})
		},
	}
}

func syncResumeCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "Schedule a paused sync again and continue its paused run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, func(c *client) error {
				resp, err := c.ResumeSync(cmd.Context(), &adminv1.ResumeSyncRequest{Sync: args[0]})
				if err != nil {
					return err
				}
				return reportControl(cmd.OutOrStdout(), "resumed", args[0], resp.GetRun())
			})
		},
	}
}

func reportControl(w io.Writer, verb, sync string, r *adminv1.Run) error {
	if r == nil {
		_, err := fmt.Fprintf(w, "%s sync %s (no active run)\n", verb, sync)
		return err
	}
	_, err := fmt.Fprintf(w, "%s sync %s; run %s is %s\n", verb, sync, r.GetId(), r.GetState())
	return err
}

func runsCancelCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN_ID",
		Short: "End an active run without committing its snapshot",
		Long: "cancel ends the run; batches already at the destination stay there, nothing more is sent, " +
			"and the snapshot does not move, so the next run sends again whatever this one did.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, func(c *client) error {
				resp, err := c.CancelRun(cmd.Context(), &adminv1.CancelRunRequest{RunId: args[0]})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "cancelled run %s of sync %s\n", resp.GetRun().GetId(), resp.GetRun().GetSync())
				return err
			})
		},
	}
}

func runsApproveCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "approve RUN_ID",
		Short: "Let a run stopped by a safety check send its changes",
		Long: "approve lets a run in state awaiting_approval (its planned deletes or changes were an unusual " +
			"share of the snapshot; `ebb runs get` says which) go on. `ebb runs cancel` drops it instead.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, func(c *client) error {
				resp, err := c.ApproveRun(cmd.Context(), &adminv1.ApproveRunRequest{RunId: args[0]})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "approved run %s of sync %s\n", resp.GetRun().GetId(), resp.GetRun().GetSync())
				return err
			})
		},
	}
}
