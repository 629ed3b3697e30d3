package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/services/ebb/node"
)

// alertSink records the alerts it receives, by path.
type alertSink struct {
	mu    sync.Mutex
	byURL map[string][]map[string]any
}

func startAlertSink(t *testing.T) (*alertSink, string) {
	t.Helper()
	s := &alertSink{byURL: map[string][]map[string]any{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		s.mu.Lock()
		s.byURL[r.URL.Path] = append(s.byURL[r.URL.Path], m)
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *alertSink) got(path string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.byURL[path]...)
}

// startServiceCopy runs another copy of a service on the env's NATS.
func startServiceCopy(t *testing.T, e *env, service string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, node.Options{JS: e.ns.JS, Log: zerolog.Nop(), Services: []string{service}})
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestAlertsFireOncePerCondition(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 1000)
	hook, url := sink(t)
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == `{"id":77,"region":"us"}` {
			return 422, "email is invalid"
		}
		return 0, ""
	})
	alerts, alertURL := startAlertSink(t)
	e := startEnv(t)
	startServiceCopy(t, e, "reporting") // two copies see every run; each alert still goes once
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Alerts = []config.Alert{
		{On: config.AlertRunFailed, Webhook: alertURL + "/failed"},
		{On: config.AlertFailedRecords, Share: 0.0005, Slack: alertURL + "/slack"},
		{On: config.AlertRowCountSwing, Share: 0.2, Webhook: alertURL + "/swing"},
	}
	e.apply(f)

	r1 := e.runSync("customers")
	require.Equal(t, run.Failed, r1.State)
	require.Eventually(t, func() bool { return len(alerts.got("/failed")) == 1 && len(alerts.got("/slack")) == 1 },
		10*time.Second, 20*time.Millisecond)
	failed := alerts.got("/failed")[0]
	require.Equal(t, "customers", failed["sync"])
	require.Equal(t, r1.ID, failed["run_id"])
	require.Equal(t, "run_failed", failed["condition"])
	require.Contains(t, failed["summary"], "1 of 1000 records failed")
	require.Contains(t, alerts.got("/slack")[0]["text"], "failed 1 of 1000 records (0.1%, above 0.1%)")
	require.Empty(t, alerts.got("/swing"), "a first run has no previous size to swing from")

	// The model loses 40% of its rows: a swing above 20%, under the
	// safety stop's 50%.
	hook.Reject(nil)
	p.exec(`DELETE FROM $S.customers WHERE id % 5 IN (1, 2)`)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Eventually(t, func() bool { return len(alerts.got("/swing")) == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, alerts.got("/swing")[0]["summary"], "returned 600 rows")

	require.Never(t, func() bool {
		return len(alerts.got("/failed")) > 1 || len(alerts.got("/slack")) > 1 || len(alerts.got("/swing")) > 1
	}, 2*time.Second, 50*time.Millisecond, "an alert was sent twice")
}

func TestSlowRunAlert(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 100)
	hook, url := sink(t)
	hook.SetDown(true) // the run keeps retrying: it runs long
	alerts, alertURL := startAlertSink(t)
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Alerts = []config.Alert{{On: config.AlertSlowRun, After: "1s", Webhook: alertURL + "/slow"}}
	e.apply(f)

	r, err := run.Start(t.Context(), e.plane.Bus, e.plane.Runs, "customers", "manual")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(alerts.got("/slow")) == 1 }, 20*time.Second, 20*time.Millisecond)
	got := alerts.got("/slow")[0]
	require.Equal(t, r.ID, got["run_id"])
	require.Contains(t, got["summary"], "has been going for")
	require.Never(t, func() bool { return len(alerts.got("/slow")) > 1 }, 7*time.Second, 100*time.Millisecond,
		"the slow-run alert repeated")
	_, err = e.plane.Runs.Cancel(t.Context(), r.ID)
	require.NoError(t, err)
}
