package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func runsCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Aliases: []string{"run"}, Short: "Inspect runs"}
	cmd.AddCommand(runsListCmd(g), runsGetCmd(g), runsFailuresCmd(g), runsCancelCmd(g), runsApproveCmd(g))
	return cmd
}

func runsListCmd(g *Globals) *cobra.Command {
	var sync string
	var limit int32
	cmd := &cobra.Command{Use: "list", Short: "List runs, newest first", Args: cobra.NoArgs}
	out := outputFlag(cmd)
	cmd.Flags().StringVar(&sync, "sync", "", "only this sync's runs")
	cmd.Flags().Int32Var(&limit, "limit", 20, "at most this many runs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return call(g, func(c *client) error {
			resp, err := c.ListRuns(cmd.Context(), &adminv1.ListRunsRequest{Sync: sync, Limit: limit})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *out, resp, func(w io.Writer) error {
				rows := make([][]string, 0, len(resp.GetRuns()))
				for _, r := range resp.GetRuns() {
					rows = append(rows, []string{
						r.GetId(), r.GetSync(), r.GetState(), r.GetTrigger(), when(r.GetCreatedAt()),
						fmt.Sprintf("%d/%d", delivered(r), planned(r)), itoa(failed(r)),
					})
				}
				return table(w, []string{"ID", "SYNC", "STATE", "TRIGGER", "CREATED", "DELIVERED", "FAILED"}, rows)
			})
		})
	}
	return cmd
}

func delivered(r *adminv1.Run) int64 {
	return r.GetAdds().GetDelivered() + r.GetChanges().GetDelivered() + r.GetDeletes().GetDelivered()
}

func failed(r *adminv1.Run) int64 {
	return r.GetAdds().GetFailed() + r.GetChanges().GetFailed() + r.GetDeletes().GetFailed()
}

func planned(r *adminv1.Run) int64 {
	p := r.GetPlanned()
	return p.GetAdds() + p.GetChanges() + p.GetDeletes()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// counts renders an outcome against what was planned.
func counts(o *adminv1.Outcome, planned int64) string {
	line := fmt.Sprintf("%d/%d delivered, %d failed, %d vanished", o.GetDelivered(), planned, o.GetFailed(), o.GetVanished())
	if o.GetFiltered() > 0 {
		line += fmt.Sprintf(", %d filtered", o.GetFiltered())
	}
	return line
}

func runsGetCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "get RUN_ID", Short: "Show a run", Args: cobra.ExactArgs(1)}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.GetRun(cmd.Context(), &adminv1.GetRunRequest{RunId: args[0]})
			if err != nil {
				return err
			}
			r := resp.GetRun()
			return render(cmd.OutOrStdout(), *out, r, func(w io.Writer) error {
				p := r.GetPlanned()
				return fields(w,
					"id", r.GetId(),
					"sync", r.GetSync(),
					"state", state(r),
					"trigger", r.GetTrigger(),
					"error", orDash(r.GetError()),
					"safety stop", orDash(r.GetSafetyStop()),
					"type changes", orDash(strings.Join(r.GetTypeChanges(), "; ")),
					"engine", orDash(r.GetEngine()),
					"model rows", itoa(r.GetModelRows()),
					"extracted", itoa(r.GetExtracted()),
					"adds", counts(r.GetAdds(), p.GetAdds()),
					"changes", counts(r.GetChanges(), p.GetChanges()),
					"deletes", counts(r.GetDeletes(), p.GetDeletes()),
					"retries", itoa(r.GetRetries()),
					"phases", phases(r),
					"created", when(r.GetCreatedAt()),
					"started", when(r.GetStartedAt()),
					"finished", when(r.GetFinishedAt()),
				)
			})
		})
	}
	return cmd
}

func runsFailuresCmd(g *Globals) *cobra.Command {
	var limit int32
	cmd := &cobra.Command{Use: "failures RUN_ID", Short: "List the records that failed in a run", Args: cobra.ExactArgs(1)}
	out := outputFlag(cmd)
	cmd.Flags().Int32Var(&limit, "limit", 100, "at most this many failures")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.ListFailures(cmd.Context(), &adminv1.ListFailuresRequest{RunId: args[0], Limit: limit})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *out, resp, func(w io.Writer) error {
				rows := make([][]string, 0, len(resp.GetFailures()))
				for _, f := range resp.GetFailures() {
					held := ""
					if f.GetQuarantined() {
						held = "quarantined"
					}
					rows = append(rows, []string{f.GetKey(), f.GetOp(), f.GetError(), held})
				}
				if err := table(w, []string{"KEY", "OP", "ERROR", "STATUS"}, rows); err != nil {
					return err
				}
				if resp.GetTruncated() {
					fmt.Fprintf(cmd.ErrOrStderr(), "showing the first %d failures; pass --limit to see more\n", len(rows))
				}
				return nil
			})
		})
	}
	return cmd
}

// state is a run's state, with where a paused run resumes.
func state(r *adminv1.Run) string {
	if r.GetPausedFrom() != "" {
		return r.GetState() + " (in " + r.GetPausedFrom() + ")"
	}
	return r.GetState()
}

// phases lists the time spent in each phase: "diffing 1.2s, extracting 3s".
func phases(r *adminv1.Run) string {
	parts := make([]string, 0, len(r.GetPhases()))
	for _, p := range r.GetPhases() {
		parts = append(parts, p.GetPhase()+" "+p.GetDuration().AsDuration().Round(time.Millisecond).String())
	}
	return orDash(strings.Join(parts, ", "))
}
