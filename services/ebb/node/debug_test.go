package node_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/debug"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func adminClient(t *testing.T, e *env) adminv1.AdminServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(e.admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return adminv1.NewAdminServiceClient(conn)
}

// watch opens a debug stream and waits until delivery can see the watch.
func watch(t *testing.T, e *env, req *adminv1.DebugRequest) adminv1.AdminService_DebugClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	stream, err := adminClient(t, e).Debug(ctx, req)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := e.plane.State.Get(ctx, "debug."+req.GetSync())
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	return stream
}

func TestLiveDebuggerShowsRecords(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 300)
	hook, url := sink(t)
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == `{"id":77,"region":"us"}` {
			return 422, "email is invalid"
		}
		return 0, ""
	})
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	all := watch(t, e, &adminv1.DebugRequest{Sync: "customers"})
	failed := watch(t, e, &adminv1.DebugRequest{Sync: "customers", Status: "failed"})

	var mu sync.Mutex
	var seen []*adminv1.DebugResponse
	go func() {
		for {
			ev, err := all.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
		}
	}()
	r := e.runSync("customers")
	require.Equal(t, run.Failed, r.State)

	ev, err := failed.Recv()
	require.NoError(t, err)
	require.Equal(t, "us,77", ev.GetKey())
	require.Equal(t, "failed", ev.GetStatus())
	require.Equal(t, "upsert", ev.GetOp())
	require.Contains(t, ev.GetError(), "email is invalid")
	require.Equal(t, "hook", ev.GetDestination())
	require.Equal(t, r.ID, ev.GetRunId())

	n := 0
	defer func() { t.Log("events seen:", n) }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n = len(seen)
		return n >= 200
	}, 10*time.Second, 20*time.Millisecond, "the debugger shows the run's records")
	mu.Lock()
	defer mu.Unlock()
	first := seen[0]
	require.Equal(t, "delivered", first.GetStatus())
	require.NotEmpty(t, first.GetPayload().GetFields()["name"].GetStringValue(), "the payload as sent")
	require.Positive(t, first.GetLatencyMs())
	require.NotEmpty(t, first.GetRequest())
}

func TestStalledWatcherDoesNotSlowTheSync(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 5000)
	_, url := sink(t)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	start := time.Now()
	require.Equal(t, run.Succeeded, e.runSync("customers").State)
	alone := time.Since(start)

	stalled := watch(t, e, &adminv1.DebugRequest{Sync: "customers"}) // never read until the end
	p.exec(`UPDATE $S.customers SET score = score + 1`)
	start = time.Now()
	r := e.runSync("customers")
	watched := time.Since(start)
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.EqualValues(t, 5000, r.Changes.Delivered)
	require.Less(t, watched, 3*alone+5*time.Second, "watched run took %s, unwatched %s", watched, alone)

	// A watcher that falls behind a flood of events is dropped, not
	// waited for: the flood stands for a long run's events.
	ev, _ := json.Marshal(debug.Event{Sync: "customers", Status: "delivered", KeyText: "x", Payload: map[string]any{"pad": strings.Repeat("x", 500)}})
	for range 50_000 {
		require.NoError(t, e.ns.JS.Conn().Publish(debug.Subject("customers"), ev))
	}
	var err error
	for err == nil {
		_, err = stalled.Recv()
	}
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err.Error())
	require.Contains(t, err.Error(), "watcher too slow")
}

// The transformation's log() lines reach the live debugger.
func TestTransformationLogsReachTheDebugger(t *testing.T) {
	p := newPG(t)
	seedAccounts(p)
	_, url := sink(t)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	e.apply(transformConfig(p, url, `function transformEvent(record, metadata) {
  if (metadata.key.id === 7) { log("checking", metadata.key.id, metadata.op); }
  return record;
}`))
	logs := watch(t, e, &adminv1.DebugRequest{Sync: "accounts", Status: "log"})
	r := e.runSync("accounts")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	ev, err := logs.Recv()
	require.NoError(t, err)
	require.Equal(t, "log", ev.GetStatus())
	require.Equal(t, "7", ev.GetKey())
	require.Equal(t, r.ID, ev.GetRunId())
	require.Equal(t, []string{"checking 7 upsert"}, ev.GetLogs())
}
