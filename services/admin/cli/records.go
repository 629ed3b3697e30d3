package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func recordsCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "records", Short: "Look up records across runs"}
	cmd.AddCommand(recordsFindCmd(g))
	return cmd
}

func recordsFindCmd(g *Globals) *cobra.Command {
	var key string
	var limit int
	cmd := &cobra.Command{
		Use:   "find SYNC --key K",
		Short: "Show a record's history across runs",
		Long: "find shows, newest first, what happened to the record in each run: the op sent, its outcome, the " +
			"destination's answer and a hash of the payload (it changes when what was sent did). K is the key's " +
			"values joined by commas, as `ebb runs failures` prints them.",
		Args: cobra.ExactArgs(1),
	}
	out := outputFlag(cmd)
	cmd.Flags().StringVar(&key, "key", "", "the record's key values, joined by commas (required)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many events")
	_ = cmd.MarkFlagRequired("key")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.FindRecord(cmd.Context(), &adminv1.FindRecordRequest{Sync: args[0], Key: key, Limit: int32(limit)})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *out, resp, func(w io.Writer) error {
				if len(resp.GetEvents()) == 0 {
					_, err := fmt.Fprintf(w, "no history for key %q of sync %s (kept 7 days by default)\n", key, args[0])
					return err
				}
				rows := make([][]string, 0, len(resp.GetEvents()))
				for _, ev := range resp.GetEvents() {
					rows = append(rows, []string{when(ev.GetAt()), ev.GetRunId(), ev.GetOp(), ev.GetStatus(),
						orDash(ev.GetPayloadHash()), ev.GetResponse()})
				}
				return table(w, []string{"WHEN", "RUN", "OP", "STATUS", "PAYLOAD HASH", "RESPONSE"}, rows)
			})
		})
	}
	return cmd
}
