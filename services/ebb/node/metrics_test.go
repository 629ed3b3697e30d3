package node_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
)

// get fetches path from the node's HTTP server.
func (e *env) get(addr, path string) (int, string) {
	e.t.Helper()
	resp, err := http.Get("http://" + addr + path)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(body)
}

// metric reads one series' value from a Prometheus text exposition; labels
// are written as Prometheus sorts them.
func metric(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	require.NotNil(t, m, "series %s not exported", series)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

func TestMetricsAfterARun(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 500)
	hook, url := sink(t)
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == `{"id":77,"region":"us"}` {
			return 422, "email is invalid"
		}
		return 0, ""
	})
	e := startEnv(t)
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Name, f.Syncs[0].Destination, f.Destinations[0].Name = "metered", "metered_hook", "metered_hook"
	e.apply(f)
	addr := <-e.httpReady

	r := e.runSync("metered")
	require.Equal(t, run.Failed, r.State)
	var phases []run.State
	for _, p := range r.Durations() {
		phases = append(phases, p.Phase)
		require.Positive(t, p.Duration, "phase %s", p.Phase)
	}
	require.Equal(t, []run.State{run.Pending, run.Diffing, run.Extracting, run.Delivering, run.Committing}, phases)
	_, body := e.get(addr, "/metrics")
	require.EqualValues(t, 500, metric(t, body, `ebb_records_total{stage="extracted",status="ok",sync="metered"}`))
	require.EqualValues(t, 499, metric(t, body, `ebb_records_total{stage="delivered",status="ok",sync="metered"}`))
	require.EqualValues(t, 1, metric(t, body, `ebb_records_total{stage="delivered",status="failed",sync="metered"}`))
	require.EqualValues(t, 1, metric(t, body, `ebb_runs_total{state="failed",sync="metered"}`))
	require.EqualValues(t, 1, metric(t, body, `ebb_run_seconds_count{sync="metered"}`))
	require.Positive(t, metric(t, body, `ebb_destination_requests_total{destination="metered_hook",outcome="ok"}`))
	require.Positive(t, metric(t, body, `ebb_destination_requests_total{destination="metered_hook",outcome="rejected"}`),
		"the batch holding the bad record was rejected, then split")
	require.Positive(t, metric(t, body, `ebb_destination_request_seconds_count{destination="metered_hook"}`))
	require.Regexp(t, `ebb_consumer_ack_pending_messages\{consumer="deliver_metered_hook_0",stream="EBB_DELIVER"\} 0`, body)
	require.Contains(t, body, "go_goroutines")

	code, _ := e.get(addr, "/healthz")
	require.Equal(t, http.StatusOK, code)
	code, _ = e.get(addr, "/readyz")
	require.Equal(t, http.StatusOK, code)
	e.ns.Stop()
	require.Eventually(t, func() bool {
		code, _ := e.get(addr, "/readyz")
		return code == http.StatusServiceUnavailable
	}, 10*time.Second, 100*time.Millisecond, "readiness follows JetStream")
}

func TestWebPageServedWithTheAdminAPI(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 50)
	_, url := sink(t)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	addr := <-e.httpReady
	r := e.runSync("customers")
	require.Equal(t, run.Succeeded, r.State, r.Error)

	code, page := e.get(addr, "/ui/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "customers")
	code, page = e.get(addr, "/ui/runs/"+r.ID)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, r.ID)
	require.Contains(t, page, "succeeded")

	// The live page watches the sync while it is viewed.
	code, page = e.get(addr, "/ui/syncs/customers/live")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "No records delivered since you started watching")
	require.Eventually(t, func() bool {
		_, err := e.plane.State.Get(t.Context(), "debug.customers")
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	p.exec(`UPDATE $S.customers SET score = score + 1 WHERE id = 6`)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Eventually(t, func() bool {
		_, page = e.get(addr, "/ui/syncs/customers/live?status=delivered")
		return strings.Contains(page, r2.ID)
	}, 10*time.Second, 50*time.Millisecond, "the live page shows the run's records")
	require.Contains(t, page, "apac,6")
	require.Contains(t, page, `&#34;score&#34;`, "with the payload, escaped")
}
