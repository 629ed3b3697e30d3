package segment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/destination/segment"
	"github.com/ebb-etl/ebb/libs/record"
)

func open(t *testing.T, srv *apitest.Segment, extra map[string]any) *segment.Destination {
	t.Helper()
	cfg := map[string]any{"endpoint": srv.URL(), "write_key": "wk-secret"}
	for k, v := range extra {
		cfg[k] = v
	}
	d, err := segment.Open(cfg, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func batch(recs ...record.Record) destination.Batch {
	return destination.Batch{ID: "s/r/deliver/0/0/0", Sync: "s", RunID: "r", Records: recs}
}

func TestIdentifyForEveryWriteOp(t *testing.T) {
	srv := apitest.NewSegment(t, "wk-secret")
	d := open(t, srv, nil)
	for _, op := range []record.Op{record.OpUpsert, record.OpInsert, record.OpUpdate} {
		errs, err := d.Write(context.Background(), batch(apitest.Rec(op, "u-"+string(op), map[string]any{"plan": "pro"})))
		require.NoError(t, err)
		require.NoError(t, errs[0])
	}
	calls := srv.Calls()
	require.Len(t, calls, 3)
	for i, op := range []string{"upsert", "insert", "update"} {
		assert.Equal(t, "identify", calls[i]["type"])
		assert.Equal(t, "u-"+op, calls[i]["userId"])
		assert.Equal(t, map[string]any{"plan": "pro"}, calls[i]["traits"])
		assert.Len(t, calls[i]["messageId"], 32)
	}
}

func TestTrackAndGroupCalls(t *testing.T) {
	srv := apitest.NewSegment(t, "wk-secret")
	track := open(t, srv, map[string]any{"call": "track", "event": "Plan Changed", "user_id_field": "user"})
	group := open(t, srv, map[string]any{"call": "group", "group_id_field": "account"})
	r := apitest.Rec(record.OpUpsert, "7", map[string]any{"user": "u7", "account": json.Number("99")})
	_, err := track.Write(context.Background(), batch(r))
	require.NoError(t, err)
	_, err = group.Write(context.Background(), batch(r))
	require.NoError(t, err)
	calls := srv.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, "track", calls[0]["type"])
	assert.Equal(t, "Plan Changed", calls[0]["event"])
	assert.Equal(t, "u7", calls[0]["userId"])
	assert.Equal(t, "u7", calls[0]["properties"].(map[string]any)["user"])
	assert.Equal(t, "group", calls[1]["type"])
	assert.Equal(t, "99", calls[1]["groupId"])
	assert.Equal(t, "7", calls[1]["userId"])
}

func TestDeleteFailsPerRecord(t *testing.T) {
	srv := apitest.NewSegment(t, "wk-secret")
	d := open(t, srv, nil)
	errs, err := d.Write(context.Background(), batch(
		apitest.Rec(record.OpDelete, "1", nil), apitest.Rec(record.OpUpsert, "2", nil)))
	require.NoError(t, err)
	require.ErrorContains(t, errs[0], "cannot delete")
	require.NoError(t, errs[1])
	require.Len(t, srv.Calls(), 1)
}

func TestOversizeBatchIsSplitAndOversizeCallFails(t *testing.T) {
	srv := apitest.NewSegment(t, "wk-secret")
	d := open(t, srv, nil)
	var recs []record.Record
	for i := range 60 { // 60 × 20KB: three requests under 500KB each
		recs = append(recs, apitest.Rec(record.OpUpsert, fmt.Sprint(i), map[string]any{"bio": strings.Repeat("x", 20<<10)}))
	}
	recs = append(recs, apitest.Rec(record.OpUpsert, "big", map[string]any{"bio": strings.Repeat("x", 40<<10)}))
	errs, err := d.Write(context.Background(), batch(recs...))
	require.NoError(t, err)
	for i := range 60 {
		require.NoError(t, errs[i])
	}
	require.ErrorContains(t, errs[60], "over the API's 32KB limit")
	assert.Len(t, srv.Calls(), 60)
	assert.Equal(t, 3, srv.Requests())
}

func TestThrottledBatchCarriesRetryAfter(t *testing.T) {
	srv := apitest.NewSegment(t, "wk-secret")
	d := open(t, srv, nil)
	srv.Script(apitest.Throttle(7))
	b := batch(apitest.Rec(record.OpUpsert, "1", nil))
	_, err := d.Write(context.Background(), b)
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Equal(t, 7*time.Second, destination.RetryAfter(err))

	// The retry carries the same messageId, so Segment drops a duplicate.
	_, err = d.Write(context.Background(), b)
	require.NoError(t, err)
	assert.Equal(t, destination.MessageID(b, b.Records[0]), srv.Calls()[0]["messageId"])
}

func TestWrongWriteKeyIsPermanentAuthError(t *testing.T) {
	srv := apitest.NewSegment(t, "the-right-key")
	d := open(t, srv, nil)
	_, err := d.Write(context.Background(), batch(apitest.Rec(record.OpUpsert, "1", nil)))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "segment auth rejected (HTTP 401)")
	assert.NotContains(t, err.Error(), "wk-secret")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := map[string]map[string]any{
		"segment config.write_key is required":                       {},
		"segment config.event is required with call: track":          {"write_key": "k", "call": "track"},
		`segment config.call: "page" is not one of`:                  {"write_key": "k", "call": "page"},
		"segment config.endpoint: want an absolute http://":          {"write_key": "k", "endpoint": "api.segment.io"},
		"segment config.group_id_field is required with call: group": {"write_key": "k", "call": "group"},
	}
	for want, cfg := range cases {
		_, err := segment.Open(cfg, apitest.Opts)
		require.Error(t, err, want)
		assert.Contains(t, err.Error(), want)
	}
}
