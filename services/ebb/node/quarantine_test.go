package node_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
)

// TestPoisonRowIsQuarantined: a record the destination always rejects fails
// its run, is sent again by the next ones, is quarantined after
// quarantine_after runs, and `ebb sync retry` sends it again on demand.
func TestPoisonRowIsQuarantined(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 200)
	hook, url := sink(t)
	const poison = `{"id":77,"region":"us"}`
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == poison {
			return 422, "email is invalid"
		}
		return 0, ""
	})
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].QuarantineAfter = 3
	e.apply(f)

	var last *run.Run
	for i := 1; i <= 3; i++ {
		last = e.runSync("customers")
		require.Equal(t, run.Failed, last.State, "run %d", i)
		require.EqualValues(t, 1, last.FailedRecords(), "run %d", i)
	}
	out, code := ebbCLI(t, e, "runs", "failures", last.ID)
	require.Zero(t, code, out)
	require.Regexp(t, `us,77\s+upsert\s+HTTP 422.*email is invalid.*\s+quarantined`, out)
	out, code = ebbCLI(t, e, "sync", "quarantine", "customers")
	require.Zero(t, code, out)
	require.Regexp(t, `us,77\s+quarantined\s+3\s+`+last.ID, out)

	// Quarantined: no longer sent, and the run succeeds.
	r4 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r4.State, r4.Error)
	require.Zero(t, r4.Planned.Total())
	require.EqualValues(t, 1, r4.Quarantined)

	hook.Reject(nil)
	out, code = ebbCLI(t, e, "sync", "retry", "customers", "--key", "us,77")
	require.Zero(t, code, out)
	require.Contains(t, out, "released 1 quarantined records")
	id := regexp.MustCompile(`started run (\S+)`).FindStringSubmatch(out)
	require.Len(t, id, 2, out)
	r5 := e.waitRun(&run.Run{Sync: "customers", ID: id[1]}, time.Minute)
	require.Equal(t, run.Succeeded, r5.State, r5.Error)
	// In mirror mode a failed record's key is committed uncertain, so it
	// goes again as a change (an upsert) rather than an add.
	require.EqualValues(t, 1, r5.Adds.Delivered+r5.Changes.Delivered)
	require.Contains(t, hook.State(), poison)
	out, code = ebbCLI(t, e, "sync", "quarantine", "customers")
	require.Zero(t, code, out)
	require.NotContains(t, out, "us,77")
}
