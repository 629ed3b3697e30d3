package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
)

// syncRow is a sync on the overview: what it is and how its last run went.
type syncRow struct {
	Name        string   `json:"name"`
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Mode        string   `json:"mode"`
	Schedule    string   `json:"schedule"`
	Paused      bool     `json:"paused"`
	Last        *runView `json:"last_run,omitempty"`
}

// overview is the home page.
type overview struct {
	Syncs []syncRow `json:"syncs"`
}

func (o overview) refresh() int {
	for _, s := range o.Syncs {
		if s.Last != nil && s.Last.Active {
			return 5
		}
	}
	return 0
}

// mappingRow is one field of a sync's mapping: a column or a constant.
type mappingRow struct {
	From  string `json:"from,omitempty"`
	Const string `json:"const,omitempty"`
	To    string `json:"to"`
}

// syncPage is one sync: its config summary and its recent runs. Source and
// destination configs are left out: they are where secrets live.
type syncPage struct {
	syncRow
	SQL             string       `json:"sql"`
	Key             []string     `json:"primary_key"`
	Mapping         []mappingRow `json:"mapping,omitempty"`
	QuarantineAfter int          `json:"quarantine_after"`
	// Quarantined counts the sync's keys held back after failing too often.
	Quarantined int       `json:"quarantined"`
	Runs        []runView `json:"runs"`
}

func (p syncPage) title() string { return p.Name }

func (p syncPage) refresh() int {
	if len(p.Runs) > 0 && p.Runs[0].Active {
		return 2
	}
	return 0
}

// runView is a run as people read it.
type runView struct {
	ID         string      `json:"id"`
	Sync       string      `json:"sync"`
	State      string      `json:"state"`
	PausedFrom string      `json:"paused_from,omitempty"`
	Active     bool        `json:"active"`
	Trigger    string      `json:"trigger"`
	Error      string      `json:"error,omitempty"`
	SafetyStop string      `json:"safety_stop,omitempty"`
	ModelRows  int64       `json:"model_rows"`
	Extracted  int64       `json:"extracted"`
	Planned    run.Planned `json:"planned"`
	Adds       run.Outcome `json:"adds"`
	Changes    run.Outcome `json:"changes"`
	Deletes    run.Outcome `json:"deletes"`
	// Total sums the outcomes of every op.
	Total       run.Outcome `json:"total"`
	Quarantined int64       `json:"quarantined"`
	CreatedAt   time.Time   `json:"created_at"`
	StartedAt   time.Time   `json:"started_at,omitzero"`
	FinishedAt  time.Time   `json:"finished_at,omitzero"`
	ApprovedAt  time.Time   `json:"approved_at,omitzero"`
	// Duration is from start (or creation) to finish, or to now while the
	// run goes on.
	Duration time.Duration `json:"duration_ns"`
}

func newRunView(r *run.Run) runView {
	v := runView{
		ID: r.ID, Sync: r.Sync, State: string(r.State), PausedFrom: string(r.PausedFrom),
		Active: !r.State.Terminal(), Trigger: r.Trigger, Error: r.Error, SafetyStop: r.SafetyStop,
		ModelRows: r.ModelRows, Extracted: r.Extracted, Planned: r.Planned,
		Adds: r.Adds, Changes: r.Changes, Deletes: r.Deletes, Quarantined: r.Quarantined,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, ApprovedAt: r.ApprovedAt,
	}
	for _, o := range []run.Outcome{r.Adds, r.Changes, r.Deletes} {
		v.Total.Delivered += o.Delivered
		v.Total.Failed += o.Failed
		v.Total.Vanished += o.Vanished
	}
	start, end := r.StartedAt, r.FinishedAt
	if start.IsZero() {
		start = r.CreatedAt
	}
	if end.IsZero() {
		end = time.Now()
	}
	v.Duration = end.Sub(start)
	return v
}

// failureRow is one record a run could not deliver.
type failureRow struct {
	Key         string `json:"key"`
	Op          string `json:"op"`
	Status      string `json:"status"`
	Error       string `json:"error,omitempty"`
	Quarantined bool   `json:"quarantined"`
}

// runPage is one run and its failed records.
type runPage struct {
	Run      runView      `json:"run"`
	Failures []failureRow `json:"failures"`
	// Truncated: the run has more failed records than the page shows.
	Truncated bool `json:"truncated"`
	Limit     int  `json:"limit"`
}

func (p runPage) title() string { return "run " + p.Run.ID }

func (p runPage) refresh() int {
	if p.Run.Active {
		return 2
	}
	return 0
}

// syncs loads the overview.
func (s *server) syncs(r *http.Request) (any, error) {
	ctx := r.Context()
	f, err := s.d.Configs.Load(ctx)
	if err != nil {
		return nil, err
	}
	state, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	o := overview{Syncs: []syncRow{}}
	for _, sy := range f.Syncs {
		row, err := syncRowOf(ctx, state, sy)
		if err != nil {
			return nil, err
		}
		runs, err := s.d.Runs.List(ctx, sy.Name, 1)
		if err != nil {
			return nil, err
		}
		if len(runs) > 0 {
			v := newRunView(runs[0])
			row.Last = &v
		}
		o.Syncs = append(o.Syncs, row)
	}
	return o, nil
}

func syncRowOf(ctx context.Context, state jetstream.KeyValue, sy config.Sync) (syncRow, error) {
	row := syncRow{Name: sy.Name, Source: sy.Source, Destination: sy.Destination,
		Mode: string(sy.Mode), Schedule: sy.Schedule}
	if row.Schedule == "" {
		row.Schedule = "manual"
	}
	var err error
	row.Paused, err = run.SyncPaused(ctx, state, sy.Name)
	return row, err
}

// sync loads one sync's page.
func (s *server) sync(r *http.Request) (any, error) {
	ctx := r.Context()
	name := r.PathValue("name")
	// A name that could not be stored names no sync; the store would call
	// it an invalid key instead.
	if config.ValidateName(string(config.KindSync), name) != nil {
		return nil, notFound("There is no sync named %q.", name)
	}
	sy, err := s.d.Configs.Sync(ctx, name)
	if errors.Is(err, config.ErrNotFound) {
		return nil, notFound("There is no sync named %q.", name)
	}
	if err != nil {
		return nil, err
	}
	state, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	row, err := syncRowOf(ctx, state, sy)
	if err != nil {
		return nil, err
	}
	p := syncPage{syncRow: row, SQL: sy.Model.SQL, Key: sy.Model.PrimaryKey,
		Mapping: mappingRows(sy.Mapping), QuarantineAfter: sy.Quarantine(), Runs: []runView{}}
	held, err := quarantineOf(state, s.d.Quarantine).Quarantined(ctx, name)
	if err != nil {
		return nil, err
	}
	p.Quarantined = len(held)
	runs, err := s.d.Runs.List(ctx, name, syncRunsLimit)
	if err != nil {
		return nil, err
	}
	for _, rn := range runs {
		p.Runs = append(p.Runs, newRunView(rn))
	}
	return p, nil
}

func mappingRows(ms []config.Mapping) []mappingRow {
	var out []mappingRow
	for _, m := range ms {
		row := mappingRow{From: m.From, To: m.To}
		if m.From == "" {
			c, _ := json.Marshal(m.Const)
			row.Const = string(c)
		}
		out = append(out, row)
	}
	return out
}

var runID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// run loads one run's page.
func (s *server) run(r *http.Request) (any, error) {
	ctx := r.Context()
	id := r.PathValue("id")
	// Run ids are ULIDs; anything else names no run, and must not reach
	// the store as a key filter.
	if !runID.MatchString(id) {
		return nil, notFound("There is no run %q.", id)
	}
	rn, err := s.d.Runs.Find(ctx, id)
	if errors.Is(err, run.ErrNotFound) {
		return nil, notFound("There is no run %q.", id)
	}
	if err != nil {
		return nil, err
	}
	p := runPage{Run: newRunView(rn), Failures: []failureRow{}, Limit: failuresLimit}
	results, err := run.Failures(ctx, s.d.JS, rn.Sync, rn.ID, failuresLimit)
	p.Truncated = errors.Is(err, run.ErrTooManyFailures)
	if err != nil && !p.Truncated {
		return nil, fmt.Errorf("reading failures of run %s: %w", rn.ID, err)
	}
	state, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	held, err := quarantineOf(state, s.d.Quarantine).Quarantined(ctx, rn.Sync)
	if err != nil {
		return nil, err
	}
	for _, res := range results {
		p.Failures = append(p.Failures, failureRow{Key: res.KeyEnc.String(), Op: string(res.Op),
			Status: string(res.Status), Error: res.Error, Quarantined: held[string(res.KeyEnc)]})
	}
	return p, nil
}
