package node_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
)

func TestRecordHistoryAcrossRuns(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 200)
	hook, url := sink(t)
	hook.Reject(func(rec capture.Record) (int, string) {
		if capture.KeyString(rec.Key) == `{"id":77,"region":"us"}` {
			return 422, "email is invalid"
		}
		return 0, ""
	})
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	e.apply(pipelineConfig(p, config.ModeMirror, url))
	r1 := e.runSync("customers")
	require.Equal(t, run.Failed, r1.State)
	hook.Reject(nil)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)

	resp, err := adminClient(t, e).FindRecord(t.Context(), &adminv1.FindRecordRequest{Sync: "customers", Key: "us,77"})
	require.NoError(t, err)
	events := resp.GetEvents()
	require.Len(t, events, 2)
	require.Equal(t, r2.ID, events[0].GetRunId(), "newest first")
	require.Equal(t, "delivered", events[0].GetStatus())
	require.Equal(t, "ok", events[0].GetResponse())
	require.Equal(t, r1.ID, events[1].GetRunId())
	require.Equal(t, "failed", events[1].GetStatus())
	require.Contains(t, events[1].GetResponse(), "email is invalid")
	require.NotEmpty(t, events[0].GetPayloadHash())
	require.Equal(t, events[0].GetPayloadHash(), events[1].GetPayloadHash(), "the same payload was sent both times")

	out, code := ebbCLI(t, e, "records", "find", "customers", "--key", "us,81")
	require.Equal(t, 0, code, out)
	require.Regexp(t, `upsert\s+delivered`, out, "a key delivered once has one line")
	out, code = ebbCLI(t, e, "records", "find", "customers", "--key", "nope,1")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, `no history for key "nope,1"`)
}
