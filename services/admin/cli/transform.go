package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func transformCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "transform", Short: "Work on JavaScript transformations"}
	var (
		sync, file string
		limit      int
	)
	test := &cobra.Command{
		Use:   "test --sync NAME [--file t.js] [--limit 10]",
		Short: "Run a sync's transformation on sample rows of its model and show each input and output",
		Long: "test maps the first rows of the sync's model (in key order) and runs its transformation, or the " +
			"code in --file, on them. It sends nothing and changes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &adminv1.TestTransformationRequest{Sync: sync, Limit: int32(limit)}
			if file != "" {
				code, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("reading transformation: %w", err)
				}
				req.Code, req.File = string(code), filepath.Base(file)
			}
			out := outputFlagValue(cmd)
			return call(g, func(c *client) error {
				resp, err := c.TestTransformation(cmd.Context(), req)
				if err != nil {
					return err
				}
				return render(cmd.OutOrStdout(), out, resp, func(w io.Writer) error { return printSamples(w, resp) })
			})
		},
	}
	test.Flags().StringVar(&sync, "sync", "", "the sync whose model and mapping to use")
	test.Flags().StringVar(&file, "file", "", "JavaScript to run instead of the sync's transformation")
	test.Flags().IntVar(&limit, "limit", 10, "how many rows to try")
	_ = test.MarkFlagRequired("sync")
	outputFlag(test)
	cmd.AddCommand(test)
	return cmd
}

func outputFlagValue(cmd *cobra.Command) string {
	v, err := cmd.Flags().GetString("output")
	if err != nil {
		return formatText
	}
	return v
}

// printSamples writes each sample as: key, input, then its output, each
// record indented JSON.
func printSamples(w io.Writer, resp *adminv1.TestTransformationResponse) error {
	fmt.Fprintf(w, "transformation %s, %d rows\n", resp.GetVersion(), len(resp.GetSamples()))
	for _, s := range resp.GetSamples() {
		fmt.Fprintf(w, "\n── key %s\n", s.GetKeyJson())
		fmt.Fprintf(w, "input:\n%s\n", indentJSON(s.GetInputJson()))
		for _, l := range s.GetLogs() {
			fmt.Fprintf(w, "log: %s\n", l)
		}
		switch {
		case s.GetError() != "":
			fmt.Fprintf(w, "error: %s\n", s.GetError())
		case len(s.GetOutputsJson()) == 0:
			fmt.Fprintln(w, "output: dropped (filtered)")
		default:
			for i, o := range s.GetOutputsJson() {
				label := "output"
				if len(s.GetOutputsJson()) > 1 {
					label = fmt.Sprintf("output %d of %d", i+1, len(s.GetOutputsJson()))
				}
				fmt.Fprintf(w, "%s:\n%s\n", label, indentJSON(o))
			}
		}
	}
	return nil
}

func indentJSON(s string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(s), "  ", "  "); err != nil {
		return "  " + s
	}
	return "  " + b.String()
}
