package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/natstest"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

// TestGracefulShutdown sends SIGTERM to every service process in the
// middle of a run: each exits 0 well within its shutdown timeout, handing
// its in-flight batches back; restarted, the run completes with every row
// delivered once.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs each service as a process")
	}
	const rows = 4000
	pg := newPGSchema(t)
	pg.exec(`CREATE TABLE $S.items (id bigint PRIMARY KEY, name text, score numeric(12,4), note text)`)
	pg.exec(`INSERT INTO $S.items SELECT i, 'name ' || i, i, NULL FROM generate_series(1, $1::int) AS i`, rows)
	hook := capture.New(capture.Options{})
	hookURL, err := hook.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(hook.Close)
	hook.SetLatency(100 * time.Millisecond)

	ns := natstest.Start(t)
	adminAddr := freeAddr(t)
	ps := newProcs(t, ns.URL)
	for _, svc := range chaosServices {
		ps.start(svc, svc, "--listen", adminAddr, "--shutdown-timeout", "20s")
	}
	file := filepath.Join(t.TempDir(), "ebb.yaml")
	yaml := fmt.Sprintf(chaosYAML, postgresDSN(), hookURL, chaosBatchSize, chaosPartitions, chaosAckWindow, pg.schema, "auto")
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o600))
	waitFor(t, 30*time.Second, func() bool {
		_, err := ebbCmd(t, ps.bin, "apply", "-f", file, "--server", adminAddr)
		return err == nil
	}, "ebb apply -f succeeds once the admin API is up")
	admin := adminClient(t, adminAddr)
	started, err := admin.TriggerRun(context.Background(), &adminv1.TriggerRunRequest{Sync: "items"})
	require.NoError(t, err)
	waitFor(t, time.Minute, func() bool { return len(hook.Records()) >= 500 }, "delivery under way")

	// SIGTERM every service but the admin API at once; each must exit 0
	// well within its timeout.
	stopping := time.Now()
	for _, svc := range chaosServices {
		if svc != "admin" {
			ps.signal(svc, syscall.SIGTERM)
		}
	}
	for _, svc := range chaosServices {
		if svc == "admin" {
			continue
		}
		p := ps.get(svc)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not exit within 20s of SIGTERM", svc)
		}
		require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), "%s exit code", svc)
	}
	t.Logf("every service stopped %s after SIGTERM", time.Since(stopping).Round(time.Millisecond))
	stoppedAt := len(hook.Records())
	require.Less(t, stoppedAt, rows, "the run was stopped half-way")

	hook.SetLatency(0)
	for _, svc := range chaosServices {
		if svc != "admin" {
			ps.start(svc, svc, "--listen", adminAddr)
		}
	}
	var r *adminv1.Run
	waitFor(t, 2*time.Minute, func() bool {
		got, err := admin.GetRun(context.Background(), &adminv1.GetRunRequest{RunId: started.GetRun().GetId()})
		require.NoError(t, err)
		r = got.GetRun()
		return r.GetState() == "succeeded" || r.GetState() == "failed"
	}, "the run completes after the restart")
	require.Equal(t, "succeeded", r.GetState(), r.GetError())
	require.EqualValues(t, rows, r.GetAdds().GetDelivered())
	seen := map[string]int{}
	for _, rec := range hook.Records() {
		seen[capture.KeyString(rec.Key)]++
	}
	require.Len(t, seen, rows, "every row arrived")
	for k, n := range seen {
		require.Equal(t, 1, n, "key %s arrived %d times: a graceful stop finishes or hands back its batches", k, n)
	}
}
