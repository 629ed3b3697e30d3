package reporting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	neturl "net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
)

// alertWindow bounds how old a finished run may be and still alert: a
// reporting copy that starts replays the stored runs, and those that ended
// long ago are history, not news.
const alertWindow = 10 * time.Minute

// alerter sends each sync's alerts, once per run and condition, whichever
// reporting copy sees the run first: a key created in the state bucket
// claims the alert.
type alerter struct {
	plane  *plane.Plane
	log    zerolog.Logger
	client *http.Client
	// slowEvery is how often active runs are checked for slow_run.
	slowEvery time.Duration
}

// AlertEvent is the JSON a webhook alert receives. Summary is a sentence
// a person can read as it is.
type AlertEvent struct {
	Sync      string    `json:"sync"`
	RunID     string    `json:"run_id"`
	Condition string    `json:"condition"`
	Summary   string    `json:"summary"`
	State     string    `json:"state"`
	At        time.Time `json:"at"`
}

func (a *alerter) run(ctx context.Context) error {
	runs, err := a.plane.Runs.Watch(ctx)
	if err != nil {
		return err
	}
	t := time.NewTicker(a.slowEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r, ok := <-runs:
			if !ok {
				return ctx.Err()
			}
			// A run stopped for approval is news too: a swing in the
			// model's size is often why.
			if (r.State.Terminal() && time.Since(r.FinishedAt) < alertWindow) || r.State == run.AwaitingApproval {
				a.checkFinished(ctx, r)
			}
		case <-t.C:
			a.checkSlow(ctx)
		}
	}
}

// checkFinished fires the alerts whose condition a finished (or stopped)
// run meets.
func (a *alerter) checkFinished(ctx context.Context, r *run.Run) {
	sync, err := a.plane.Configs.Sync(ctx, r.Sync)
	if err != nil {
		return // deleted since
	}
	for i, al := range sync.Alerts {
		if summary := finishedCondition(al, r); summary != "" {
			a.fire(ctx, r, i, al, summary)
		}
	}
}

// finishedCondition describes why a finished run meets al, or returns "".
func finishedCondition(al config.Alert, r *run.Run) string {
	switch al.On {
	case config.AlertRunFailed:
		// Only a terminal run can have failed.
		if r.State == run.Failed {
			return fmt.Sprintf("Ebb: run %s of sync %s failed: %s", r.ID, r.Sync, r.Error)
		}
	case config.AlertFailedRecords:
		planned, failed := r.Planned.Total(), r.FailedRecords()
		if planned > 0 && float64(failed)/float64(planned) > al.Threshold() {
			return fmt.Sprintf("Ebb: run %s of sync %s failed %d of %d records (%.1f%%, above %.1f%%).",
				r.ID, r.Sync, failed, planned, 100*float64(failed)/float64(planned), 100*al.Threshold())
		}
	case config.AlertRowCountSwing:
		diffed := r.Spec.Name != "" // set when the diff ends
		if !diffed || r.PreviousRows == 0 {
			return ""
		}
		swing := math.Abs(float64(r.ModelRows-r.PreviousRows)) / float64(r.PreviousRows)
		if swing > al.Threshold() {
			return fmt.Sprintf("Ebb: the model of sync %s returned %d rows in run %s, %.1f%% away from the %d of the last snapshot (above %.1f%%).",
				r.Sync, r.ModelRows, r.ID, 100*swing, r.PreviousRows, 100*al.Threshold())
		}
	}
	return ""
}

// checkSlow fires slow_run alerts of active runs that have gone on too long.
func (a *alerter) checkSlow(ctx context.Context) {
	f, err := a.plane.Configs.Load(ctx)
	if err != nil {
		return
	}
	for _, sync := range f.Syncs {
		for i, al := range sync.Alerts {
			if al.On != config.AlertSlowRun {
				continue
			}
			id, err := a.plane.Runs.ActiveID(ctx, sync.Name)
			if err != nil || id == "" {
				continue
			}
			r, err := a.plane.Runs.Get(ctx, sync.Name, id)
			if err != nil || r.State.Terminal() || time.Since(r.CreatedAt) < al.Duration() {
				continue
			}
			a.fire(ctx, r, i, al, fmt.Sprintf("Ebb: run %s of sync %s has been going for %s (limit %s); it is %s.",
				r.ID, r.Sync, time.Since(r.CreatedAt).Round(time.Second), al.Duration(), r.State))
		}
	}
}

// fire claims the alert and sends it. The claim makes it once per run and
// condition across copies; it stays even if sending fails for good, so a
// broken receiver does not get the alert again on every check.
func (a *alerter) fire(ctx context.Context, r *run.Run, index int, al config.Alert, summary string) {
	claim := fmt.Sprintf("alert.%s.%d", r.ID, index)
	if _, err := a.plane.State.Create(ctx, claim, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			a.log.Warn().Err(err).Msg("claiming alert")
		}
		return
	}
	log := a.log.With().Str(logging.FieldSync, r.Sync).Str(logging.FieldRun, r.ID).Str("condition", al.On).Logger()
	if err := a.send(ctx, al, AlertEvent{Sync: r.Sync, RunID: r.ID, Condition: al.On, Summary: summary,
		State: string(r.State), At: time.Now().UTC()}); err != nil {
		log.Error().Err(err).Msg("sending alert failed")
		return
	}
	log.Info().Msg("alert sent")
}

// send posts the alert, retrying a few times: JSON to a webhook, or a Slack
// message ({"text": ...}) to an incoming webhook.
func (a *alerter) send(ctx context.Context, al config.Alert, ev AlertEvent) error {
	url, body := al.Webhook, any(ev)
	if al.Slack != "" {
		url, body = al.Slack, map[string]string{"text": ev.Summary}
	}
	expanded, err := config.Expand(map[string]any{"url": url})
	if err != nil {
		return err
	}
	url, _ = expanded["url"].(string)
	data, _ := json.Marshal(body)
	for attempt := 1; ; attempt++ {
		err = a.post(ctx, url, data)
		if err == nil || attempt == 3 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

func (a *alerter) post(ctx context.Context, url string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		// The URL is a credential (a Slack webhook's is): keep it out of
		// the error, which is logged.
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			return fmt.Errorf("alert receiver unreachable: %w", uerr.Err)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert receiver answered HTTP %d", resp.StatusCode)
	}
	return nil
}
