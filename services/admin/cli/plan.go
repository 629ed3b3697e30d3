package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func syncPlanCmd(g *Globals) *cobra.Command {
	var limit int
	var all bool
	var format string
	cmd := &cobra.Command{
		Use:   "plan NAME [--limit N] [--all] [--format text|json]",
		Short: "Show exactly what the sync's next run would send, sending nothing",
		Long: "plan is a dry run of the next run: the real pipeline diffs, maps and transforms the current data, " +
			"then delivers nothing and commits nothing. It prints the counts per operation, whether a safety " +
			"stop would trip, and a sample of records per operation with the exact payload the destination " +
			"would receive (--all: every record). --format json prints JSON lines: the summary, then one line " +
			"per record.",
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().IntVar(&limit, "limit", 5, "records to show per operation")
	cmd.Flags().BoolVar(&all, "all", false, "every record, not a sample")
	cmd.Flags().StringVar(&format, "format", formatText, "text or json (JSON lines)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if format != formatText && format != formatJSON {
			return fmt.Errorf("--format: want text or json, not %q", format)
		}
		return call(g, func(c *client) error {
			stream, err := c.PlanSync(cmd.Context(), &adminv1.PlanSyncRequest{Sync: args[0], Limit: int32(limit), All: all})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if err := printPlanItem(w, format, resp); err != nil {
					return err
				}
			}
		})
	}
	return cmd
}

func printPlanItem(w io.Writer, format string, resp *adminv1.PlanSyncResponse) error {
	if format == formatJSON {
		var data []byte
		var err error
		if s := resp.GetSummary(); s != nil {
			data, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(s)
		} else {
			data, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp.GetRecord())
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(data))
		return err
	}
	if s := resp.GetSummary(); s != nil {
		return printPlanSummary(w, s)
	}
	r := resp.GetRecord()
	if _, err := fmt.Fprintf(w, "%-6s %-7s key=%s  %s\n", r.GetOp(), r.GetChange(), r.GetKey(), orDash(r.GetPayload())); err != nil {
		return err
	}
	for _, c := range r.GetChanges() {
		if _, err := fmt.Fprintf(w, "         %s: %s → %s\n", c.GetPath(), orDash(c.GetOld()), orDash(c.GetNew())); err != nil {
			return err
		}
	}
	return nil
}

func printPlanSummary(w io.Writer, s *adminv1.PlanSummary) error {
	r := s.GetRun()
	fmt.Fprintf(w, "Plan of sync %s (dry run %s: nothing sent, nothing committed)\n", r.GetSync(), r.GetId())
	if r.GetState() == "failed" && failed(r) == 0 {
		return fmt.Errorf("the dry run failed: %s", r.GetError())
	}
	p := r.GetPlanned()
	stop := "none"
	if r.GetSafetyStop() != "" {
		stop = "a run would stop for approval: " + r.GetSafetyStop()
	}
	err := fields(w,
		"model rows", fmt.Sprintf("%d (last snapshot %d)", r.GetModelRows(), r.GetPreviousRows()),
		"adds", itoa(p.GetAdds()),
		"changes", itoa(p.GetChanges()),
		"deletes", itoa(p.GetDeletes()),
		"quarantined", itoa(r.GetQuarantined()),
		"filtered", itoa(r.GetAdds().GetFiltered()+r.GetChanges().GetFiltered()+r.GetDeletes().GetFiltered()),
		"would fail", failuresNote(r),
		"safety stop", stop,
		"changed fields", changedFieldsNote(s.GetValuesKept()),
	)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w)
	return err
}

func changedFieldsNote(kept bool) string {
	if kept {
		return "shown under each changed record, against the payload last sent"
	}
	return "not shown: the sync does not keep values (keep_values: true keeps them)"
}

func failuresNote(r *adminv1.Run) string {
	n := failed(r)
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (ebb runs failures %s)", n, r.GetId())
}
