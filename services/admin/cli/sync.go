package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/convert"
)

// pollEvery is how often `sync run --wait` reads the run.
const pollEvery = 500 * time.Millisecond

func syncCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sync", Aliases: []string{"syncs"}, Short: "Inspect, run and delete syncs"}
	cmd.AddCommand(syncListCmd(g), syncGetCmd(g), syncRunCmd(g), syncDeleteCmd(g),
		syncQuarantineCmd(g), syncRetryCmd(g), syncPauseCmd(g), syncResumeCmd(g), syncPlanCmd(g), syncResetCmd(g))
	return cmd
}

func syncListCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List syncs and their last run", Args: cobra.NoArgs}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return call(g, func(c *client) error {
			ctx := cmd.Context()
			resp, err := c.ListSyncs(ctx, &adminv1.ListSyncsRequest{})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *out, resp, func(w io.Writer) error {
				return syncTable(ctx, w, c, resp.GetSyncs())
			})
		})
	}
	return cmd
}

func syncTable(ctx context.Context, w io.Writer, c *client, syncs []*adminv1.Sync) error {
	rows := make([][]string, 0, len(syncs))
	for _, s := range syncs {
		last, err := lastRun(ctx, c, s.GetName())
		if err != nil {
			return err
		}
		rows = append(rows, []string{s.GetName(), s.GetSource(), s.GetDestination(), s.GetMode(), schedule(s), last})
	}
	return table(w, []string{"NAME", "SOURCE", "DESTINATION", "MODE", "SCHEDULE", "LAST RUN"}, rows)
}

// lastRun describes a sync's newest run: its state and when it was created.
func lastRun(ctx context.Context, c *client, sync string) (string, error) {
	resp, err := c.ListRuns(ctx, &adminv1.ListRunsRequest{Sync: sync, Limit: 1})
	if err != nil {
		return "", err
	}
	if len(resp.GetRuns()) == 0 {
		return "-", nil
	}
	r := resp.GetRuns()[0]
	return r.GetState() + " " + when(r.GetCreatedAt()), nil
}

func schedule(s *adminv1.Sync) string {
	if s.GetSchedule() == "" {
		return "manual"
	}
	return s.GetSchedule()
}

func syncGetCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "get NAME", Short: "Show a sync", Args: cobra.ExactArgs(1)}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.GetSync(cmd.Context(), &adminv1.GetSyncRequest{Name: args[0]})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *out, resp, func(w io.Writer) error {
				if err := printSync(w, resp.GetSync()); err != nil {
					return err
				}
				return fields(w, "paused", fmt.Sprint(resp.GetPaused()), "active run", orDash(resp.GetActiveRunId()))
			})
		})
	}
	return cmd
}

func printSync(w io.Writer, s *adminv1.Sync) error {
	err := fields(w,
		"name", s.GetName(),
		"source", s.GetSource(),
		"destination", s.GetDestination(),
		"mode", s.GetMode(),
		"schedule", schedule(s),
		"model.sql", s.GetModel().GetSql(),
		"model.primary_key", strings.Join(s.GetModel().GetPrimaryKey(), ", "),
	)
	if err != nil || len(s.GetMapping()) == 0 {
		return err
	}
	fmt.Fprintln(w, "mapping:")
	for _, m := range s.GetMapping() {
		from := m.GetFrom()
		if m.GetConst() != nil {
			c, _ := json.Marshal(m.GetConst().AsInterface())
			from = "const " + string(c)
		}
		fmt.Fprintf(w, "  %s -> %s\n", from, m.GetTo())
	}
	return nil
}

func syncDeleteCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a sync",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, func(c *client) error {
				if _, err := c.DeleteSync(cmd.Context(), &adminv1.DeleteSyncRequest{Name: args[0]}); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted sync %s\n", args[0])
				return err
			})
		},
	}
}

func syncRunCmd(g *Globals) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "run NAME",
		Short: "Start a run of a sync and print its id",
		Long: "run starts a run of the sync and prints its id. With --wait it follows the run " +
			"and exits 0 when it succeeded, 2 when it failed, 3 when it stopped for approval at a safety " +
			"check (it prints why, and the `ebb runs approve` command that lets it go on), 1 on any other error.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, func(c *client) error {
				ctx, w := cmd.Context(), cmd.OutOrStdout()
				resp, err := c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: args[0]})
				if err != nil {
					return err
				}
				fmt.Fprintln(w, resp.GetRun().GetId())
				if !wait {
					return nil
				}
				return follow(ctx, w, c, resp.GetRun().GetId(), timeout)
			})
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the run until it ends; the exit status tells its outcome")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait, how long to wait")
	return cmd
}

// follow polls a run until it ends, printing a line whenever its counts
// change, and returns an error carrying the exit status of its outcome.
func follow(ctx context.Context, w io.Writer, c *client, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last string
	for {
		resp, err := c.GetRun(ctx, &adminv1.GetRunRequest{RunId: id})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("run %s: still running after %s: see `ebb runs get %s`", id, timeout, id)
			}
			return err
		}
		r := convert.RunFromPB(resp.GetRun())
		if r.State.Terminal() {
			fmt.Fprintf(w, "run %s %s\n", id, r.Summary())
			return outcome(r)
		}
		if r.State == run.AwaitingApproval {
			return awaitingApproval(w, r)
		}
		if line := r.Summary(); line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("run %s: still %s after %s: see `ebb runs get %s`", id, r.State, timeout, id)
		case <-tick.C:
		}
	}
}

// awaitingApproval reports a run stopped at a safety check: it sends
// nothing until someone approves it, so waiting on is pointless.
func awaitingApproval(w io.Writer, r *run.Run) error {
	fmt.Fprintf(w, "run %s %s\n", r.ID, r.Summary())
	fmt.Fprintf(w, "run %s stopped before sending anything: %s\n", r.ID, orDash(r.SafetyStop))
	fmt.Fprintf(w, "to let it send its changes: ebb runs approve %s\n", r.ID)
	fmt.Fprintf(w, "to drop it instead:         ebb runs cancel %s\n", r.ID)
	return &exitError{code: ExitAwaitingApproval, err: fmt.Errorf("run %s is awaiting approval", r.ID)}
}

// outcome is nil for a run that succeeded, an error carrying its exit
// status otherwise.
func outcome(r *run.Run) error {
	switch r.State {
	case run.Succeeded:
		return nil
	case run.Failed:
		return &exitError{code: ExitRunFailed, err: fmt.Errorf("run %s failed: %s", r.ID, orDash(r.Error))}
	default:
		return &exitError{code: 1, err: fmt.Errorf("run %s ended %s", r.ID, r.State)}
	}
}

func syncQuarantineCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine NAME",
		Short: "List a sync's records that keep failing",
		Long: "quarantine lists the sync's records that failed in several runs in a row (quarantine_after, " +
			"default 3) and are no longer sent automatically, and those on a failure streak. " +
			"`ebb sync retry` sends them again.",
		Args: cobra.ExactArgs(1),
	}
	out := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.ListQuarantine(cmd.Context(), &adminv1.ListQuarantineRequest{Sync: args[0]})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *out, resp, func(w io.Writer) error {
				rows := make([][]string, 0, len(resp.GetEntries()))
				for _, e := range resp.GetEntries() {
					state := "on a streak"
					if e.GetQuarantined() {
						state = "quarantined"
					}
					rows = append(rows, []string{e.GetKey(), state, fmt.Sprint(e.GetStreak()), e.GetLastRunId(), e.GetLastError()})
				}
				return table(w, []string{"KEY", "STATE", "FAILED RUNS", "LAST RUN", "LAST ERROR"}, rows)
			})
		})
	}
	return cmd
}

func syncRetryCmd(g *Globals) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "retry NAME [--key K]",
		Short: "Release quarantined records and send them again",
		Long: "retry releases the sync's quarantined records (or only the one whose key values, joined " +
			"by commas, are K) and starts a run that sends them.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, func(c *client) error {
				resp, err := c.RetryQuarantined(cmd.Context(), &adminv1.RetryQuarantinedRequest{Sync: args[0], Key: key})
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "released %d quarantined records\n", resp.GetReleased())
				if resp.GetRun() == nil {
					fmt.Fprintln(w, "the sync has an active run; a run that sends them starts when it ends")
					return nil
				}
				fmt.Fprintf(w, "started run %s\n", resp.GetRun().GetId())
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "release only this record (its key values joined by commas)")
	return cmd
}
