package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func syncResetCmd(g *Globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "reset NAME [--yes]",
		Short: "Drop a sync's committed snapshot: its next run sends every row as an add",
		Long: "reset drops the sync's committed snapshot (in the object store, or its table in the source's " +
			"snapshot schema), so the next run diffs against nothing and sends every row of the model as an add. " +
			"It is the way out when a primary key column changed type. It is refused while the sync has an active run. " +
			"It asks for confirmation on a terminal; elsewhere (scripts, CI) pass --yes.",
		Args: cobra.ExactArgs(1),
	}
	out := outputFlag(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "reset without asking for confirmation")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if !yes {
			q := fmt.Sprintf("Reset sync %s? Its next run sends every row of the model as an add.", name)
			if err := confirm(cmd, q); err != nil {
				return fmt.Errorf("sync %s not reset: %w", name, err)
			}
		}
		return call(g, func(c *client) error {
			resp, err := c.ResetSync(cmd.Context(), &adminv1.ResetSyncRequest{Sync: name})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *out, resp, func(w io.Writer) error { return reportReset(w, name, resp) })
		})
	}
	return cmd
}

func reportReset(w io.Writer, sync string, r *adminv1.ResetSyncResponse) error {
	if !r.GetDropped() {
		_, err := fmt.Fprintf(w, "sync %s has no committed snapshot: its next run sends every row as an add\n", sync)
		return err
	}
	_, err := fmt.Fprintf(w, "reset sync %s: dropped the snapshot of run %s (%s engine, %d rows, committed %s); "+
		"its next run sends every row as an add\n", sync, r.GetRunId(), r.GetEngine(), r.GetRows(), when(r.GetCommittedAt()))
	return err
}

// errNotConfirmed is a question answered other than yes.
var errNotConfirmed = errors.New("not confirmed")

// confirm asks a yes/no question on the terminal. Without a terminal (a
// script, a pipe, CI) there is no one to answer, so it refuses and says to
// pass --yes rather than act unasked.
func confirm(cmd *cobra.Command, question string) error {
	in := cmd.InOrStdin()
	if !isTerminal(in) {
		return errors.New("standard input is not a terminal, so no one can confirm: pass --yes")
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && answer == "" {
		return errNotConfirmed
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errNotConfirmed
}

// isTerminal reports whether r is a terminal. A variable, so tests can
// stand in for one.
var isTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
