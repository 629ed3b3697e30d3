package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured quantity: a value and its unit ("rows/s", "s",
// "MB"). Higher is better for rates, lower for times and sizes; the row's
// target says which.
type Figure struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

func (f Figure) String() string {
	if f.Unit == "" {
		return "-"
	}
	switch {
	case f.Unit == "s" && f.Value < 1:
		return fmt.Sprintf("%.0f ms", f.Value*1000)
	case f.Unit == "s":
		return fmt.Sprintf("%.2f s", f.Value)
	case f.Value >= 10_000:
		return fmt.Sprintf("%s %s", thousands(f.Value), f.Unit)
	}
	return fmt.Sprintf("%.1f %s", f.Value, f.Unit)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Row is one line of the table: what Ebb did, what the baseline did in the
// same run, their ratio, and whether the target holds.
type Row struct {
	Scenario string `json:"scenario"`
	// Measure names what is compared, e.g. "local diff vs floor".
	Measure  string `json:"measure"`
	Size     int64  `json:"size"`
	Ebb      Figure `json:"ebb"`
	Baseline Figure `json:"baseline"`
	// Ratio is Ebb over baseline (for times: how many times slower; for
	// rates: the fraction of the baseline's rate reached).
	Ratio  float64 `json:"ratio"`
	Target string  `json:"target"`
	// Status is "yes" or "no" when the target was checked, "n/a" when the
	// row has no target, "not measured" or "not built yet" otherwise.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// check sets the status from a condition, with the reason when it fails.
func (r *Row) check(ok bool, reason string, args ...any) {
	if ok {
		r.Status = "yes"
		return
	}
	r.Status = "no"
	r.Reason = fmt.Sprintf(reason, args...)
}

// notMeasured is a row that could not be measured, with why.
func notMeasured(scenario, measure string, size int64, target, reason string) Row {
	return Row{Scenario: scenario, Measure: measure, Size: size, Target: target, Status: "not measured", Reason: reason}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Report is the JSON written after a run.
type Report struct {
	Commit     string        `json:"commit"`
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"duration_ns"`
	GoMaxProcs int           `json:"gomaxprocs"`
	Rows       []Row         `json:"rows"`
	// Notes are free-form observations printed under the table.
	Notes []string `json:"notes,omitempty"`
}

func printTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmeasure\tsize\tebb\tbaseline\tratio\ttarget\tholds")
	for _, r := range rows {
		size := "-"
		if r.Size > 0 {
			size = thousands(float64(r.Size))
		}
		rat := "-"
		if r.Ratio != 0 {
			rat = fmt.Sprintf("%.2fx", r.Ratio)
		}
		holds := r.Status
		if r.Reason != "" {
			holds += ": " + r.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Measure, size, r.Ebb, r.Baseline, rat, r.Target, holds)
	}
	tw.Flush()
}

func writeReport(dir string, rep Report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := rep.Started.UTC().Format("20060102T150405Z") + "-" + rep.Commit + ".json"
	path := filepath.Join(dir, name)
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

func readReport(path string) (Report, error) {
	var rep Report
	data, err := os.ReadFile(path)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return rep, fmt.Errorf("reading %s: %w", path, err)
	}
	return rep, nil
}

// compare prints, for each row present in both reports, Ebb's figure in
// each and how it moved, and the same for the ratio to the baseline (the
// figure that holds on a noisy machine).
func compare(w io.Writer, a, b Report) {
	type key struct {
		scenario, measure string
		size              int64
	}
	old := map[key]Row{}
	for _, r := range a.Rows {
		old[key{r.Scenario, r.Measure, r.Size}] = r
	}
	fmt.Fprintf(w, "A = %s (%s), B = %s (%s)\n", a.Commit, a.Started.Format(time.RFC3339), b.Commit, b.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmeasure\tsize\tebb A\tebb B\tB/A\tratio A\tratio B\tB/A\tholds A -> B")
	for _, r := range b.Rows {
		o, ok := old[key{r.Scenario, r.Measure, r.Size}]
		if !ok {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t%s\t-\t-\t%.2fx\t-\tnew: %s\n", r.Scenario, r.Measure, r.Size, r.Ebb, r.Ratio, r.Status)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%.2fx\t%.2fx\t%s\t%s -> %s\n", r.Scenario, r.Measure, r.Size,
			o.Ebb, r.Ebb, change(o.Ebb.Value, r.Ebb.Value), o.Ratio, r.Ratio, change(o.Ratio, r.Ratio), o.Status, r.Status)
	}
	tw.Flush()
}

func change(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", b/a)
}
