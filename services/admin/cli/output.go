package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Output formats of list and get commands.
const (
	formatText = "text"
	formatJSON = "json"
)

// outputFlag adds --output to cmd.
func outputFlag(cmd *cobra.Command) *string {
	f := cmd.Flags().StringP("output", "o", formatText, "output format: text or json")
	return f
}

// render writes msg as JSON (the protobuf JSON mapping, so 64-bit counts
// are strings), or calls text for the text format.
func render(w io.Writer, format string, msg proto.Message, text func(io.Writer) error) error {
	switch format {
	case formatText:
		return text(w)
	case formatJSON:
		// Field names as in ebb.yaml, every field present, and stable
		// indentation (protojson varies its whitespace on purpose).
		data, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(msg)
		if err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		var out bytes.Buffer
		if err := json.Indent(&out, data, "", "  "); err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		out.WriteByte('\n')
		_, err = out.WriteTo(w)
		return err
	default:
		return fmt.Errorf("--output %q: want text or json", format)
	}
}

// table writes rows under a header, in aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields writes "key: value" lines, aligned.
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], kv[i+1])
	}
	return tw.Flush()
}

// configLines writes a config as indented "key: value" lines, sorted.
func configLines(w io.Writer, cfg *structpb.Struct) error {
	m := cfg.AsMap()
	if len(m) == 0 {
		_, err := fmt.Fprintln(w, "config: {}")
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintln(w, "config:")
	kv := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		kv = append(kv, "  "+k, value(m[k]))
	}
	return fields(w, kv...)
}

// value renders a config value: strings as written, the rest as JSON.
func value(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

// when renders a timestamp in local time, or "-".
func when(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().Local().Format(time.DateTime)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
