package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// sourceCheckCmds are `sources check NAME` and `sources setup-sql TYPE`.
func sourceCheckCmds(g *Globals) []*cobra.Command {
	check := &cobra.Command{
		Use:   "check NAME",
		Short: "Check the source's credentials have every grant Ebb needs",
		Long: "check connects to the source and checks each permission its syncs need: reading the tables " +
			"their models name, using the compute, and creating tables in the snapshot schema. It names " +
			"every missing grant with the statement that fixes it, and exits non-zero when one is missing.",
		Args: cobra.ExactArgs(1),
	}
	checkOut := outputFlag(check)
	check.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.CheckSource(cmd.Context(), &adminv1.CheckSourceRequest{Name: args[0]})
			if err != nil {
				return err
			}
			err = render(cmd.OutOrStdout(), *checkOut, resp, func(w io.Writer) error {
				return printFindings(w, resp.GetFindings(), false)
			})
			if err != nil {
				return err
			}
			if n := missing(resp.GetFindings()); n > 0 {
				return &exitError{code: 1, err: fmt.Errorf("source %q: %d missing: run the fix statements as an administrator", args[0], n)}
			}
			return nil
		})
	}
	setup := &cobra.Command{
		Use:   "setup-sql TYPE",
		Short: "Print the least-privilege setup of a source type (postgres, redshift, snowflake, bigquery)",
		Args:  cobra.ExactArgs(1),
	}
	setup.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.SourceSetupSQL(cmd.Context(), &adminv1.SourceSetupSQLRequest{Type: args[0]})
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), resp.GetSql())
			return err
		})
	}
	return []*cobra.Command{check, setup}
}

// printFindings writes one block per finding: OK or MISSING, what was
// checked, why, and the fix. onlyMissing leaves out what is fine.
func printFindings(w io.Writer, findings []*adminv1.SourceFinding, onlyMissing bool) error {
	for _, f := range findings {
		if f.GetOk() && onlyMissing {
			continue
		}
		state := "OK     "
		if !f.GetOk() {
			state = "MISSING"
		}
		fmt.Fprintf(w, "%s  %s\n", state, f.GetCheck())
		if f.GetDetail() != "" {
			fmt.Fprintf(w, "         %s\n", f.GetDetail())
		}
		if f.GetFix() != "" {
			fmt.Fprintf(w, "         fix: %s\n", f.GetFix())
		}
	}
	return nil
}

// printSourceWarnings writes the missing grants an apply found, as
// warnings: the apply itself succeeded.
func printSourceWarnings(w io.Writer, checks []*adminv1.SourceCheck) error {
	for _, c := range checks {
		n := missing(c.GetFindings())
		if n == 0 {
			continue
		}
		fmt.Fprintf(w, "warning: source %q is missing %d grant(s) Ebb needs (`ebb sources check %s`):\n", c.GetSource(), n, c.GetSource())
		if err := printFindings(w, c.GetFindings(), true); err != nil {
			return err
		}
	}
	return nil
}

func missing(findings []*adminv1.SourceFinding) int {
	n := 0
	for _, f := range findings {
		if !f.GetOk() {
			n++
		}
	}
	return n
}
