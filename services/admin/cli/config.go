package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ebb-etl/ebb/libs/config"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/convert"
)

func applyCmd(g *Globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make the server's configuration match a config file",
		Long: "apply makes the server's sources, destinations and syncs match the file: " +
			"it creates what is new, updates what differs and deletes what the file no longer declares.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return apply(cmd.Context(), cmd.OutOrStdout(), g, file, false)
		},
	}
	fileFlag(cmd, &file)
	return cmd
}

func planCmd(g *Globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Show what apply would change, without changing anything",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return apply(cmd.Context(), cmd.OutOrStdout(), g, file, true)
		},
	}
	fileFlag(cmd, &file)
	return cmd
}

func fileFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "file", "f", "", "config file, such as ebb.yaml")
	_ = cmd.MarkFlagRequired("file")
}

// apply parses the file locally, so errors name file:line, then sends it.
func apply(ctx context.Context, w io.Writer, g *Globals, file string, dryRun bool) error {
	f, err := config.LoadFile(file)
	if err != nil {
		return err
	}
	req, err := convert.FileToApply(f, dryRun)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	c, err := dial(g)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Apply(ctx, req)
	if err != nil {
		return err
	}
	if err := printChanges(w, resp.GetChanges(), dryRun); err != nil {
		return err
	}
	return printSourceWarnings(w, resp.GetSourceChecks())
}

// printChanges writes one line per change, then a count of each action.
func printChanges(w io.Writer, changes []*adminv1.Change, dryRun bool) error {
	if dryRun && len(changes) == 0 {
		_, err := fmt.Fprintln(w, "No changes.")
		return err
	}
	count := map[config.Action]int{}
	for _, pc := range changes {
		c := convert.ChangeFromPB(pc)
		count[c.Action]++
		fmt.Fprintln(w, c.String())
	}
	verb := "apply"
	if dryRun {
		verb = "plan"
	}
	_, err := fmt.Fprintf(w, "%s: %d to create, %d to update, %d to delete\n", verb,
		count[config.ActionCreate], count[config.ActionUpdate], count[config.ActionDelete])
	return err
}

// call dials, runs fn and closes the connection.
func call(g *Globals, fn func(c *client) error) error {
	c, err := dial(g)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func sourcesCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sources", Aliases: []string{"source"}, Short: "Inspect sources"}
	list := &cobra.Command{Use: "list", Short: "List sources", Args: cobra.NoArgs}
	listOut := outputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return call(g, func(c *client) error {
			resp, err := c.ListSources(cmd.Context(), &adminv1.ListSourcesRequest{})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *listOut, resp, func(w io.Writer) error {
				rows := make([][]string, 0, len(resp.GetSources()))
				for _, s := range resp.GetSources() {
					rows = append(rows, []string{s.GetName(), s.GetType()})
				}
				return table(w, []string{"NAME", "TYPE"}, rows)
			})
		})
	}
	get := &cobra.Command{Use: "get NAME", Short: "Show a source, secrets redacted", Args: cobra.ExactArgs(1)}
	getOut := outputFlag(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.GetSource(cmd.Context(), &adminv1.GetSourceRequest{Name: args[0]})
			if err != nil {
				return err
			}
			s := resp.GetSource()
			return render(cmd.OutOrStdout(), *getOut, s, func(w io.Writer) error {
				if err := fields(w, "name", s.GetName(), "type", s.GetType()); err != nil {
					return err
				}
				return configLines(w, s.GetConfig())
			})
		})
	}
	cmd.AddCommand(append([]*cobra.Command{list, get}, sourceCheckCmds(g)...)...)
	return cmd
}

func destinationsCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "destinations", Aliases: []string{"destination"}, Short: "Inspect destinations"}
	list := &cobra.Command{Use: "list", Short: "List destinations", Args: cobra.NoArgs}
	listOut := outputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		return call(g, func(c *client) error {
			resp, err := c.ListDestinations(cmd.Context(), &adminv1.ListDestinationsRequest{})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), *listOut, resp, func(w io.Writer) error {
				rows := make([][]string, 0, len(resp.GetDestinations()))
				for _, d := range resp.GetDestinations() {
					rows = append(rows, []string{d.GetName(), d.GetType()})
				}
				return table(w, []string{"NAME", "TYPE"}, rows)
			})
		})
	}
	get := &cobra.Command{Use: "get NAME", Short: "Show a destination, secrets redacted", Args: cobra.ExactArgs(1)}
	getOut := outputFlag(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return call(g, func(c *client) error {
			resp, err := c.GetDestination(cmd.Context(), &adminv1.GetDestinationRequest{Name: args[0]})
			if err != nil {
				return err
			}
			d := resp.GetDestination()
			return render(cmd.OutOrStdout(), *getOut, d, func(w io.Writer) error {
				if err := fields(w, "name", d.GetName(), "type", d.GetType()); err != nil {
					return err
				}
				return configLines(w, d.GetConfig())
			})
		})
	}
	cmd.AddCommand(list, get)
	return cmd
}
