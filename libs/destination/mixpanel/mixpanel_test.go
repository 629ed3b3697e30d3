package mixpanel_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/destination/mixpanel"
	"github.com/ebb-etl/ebb/libs/record"
)

const token = "mp-project-token"

func open(t *testing.T, srv *apitest.Mixpanel, tok string) *mixpanel.Destination {
	t.Helper()
	d, err := mixpanel.Open(map[string]any{"api_host": srv.URL(), "project_token": tok, "distinct_id_field": "user_id"}, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func rec(op record.Op, id string, data map[string]any) record.Record {
	r := apitest.Rec(op, id, data)
	r.Key = map[string]any{"user_id": id}
	return r
}

func write(d *mixpanel.Destination, recs ...record.Record) ([]error, error) {
	return d.Write(context.Background(), destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: recs})
}

func TestSetSetOnceAndDelete(t *testing.T) {
	srv := apitest.NewMixpanel(t, token)
	d := open(t, srv, token)
	errs, err := write(d,
		rec(record.OpUpsert, "u1", map[string]any{"plan": "pro", "seats": 3}),
		rec(record.OpUpsert, "u2", map[string]any{"plan": "free"}))
	require.NoError(t, err)
	require.Equal(t, []error{nil, nil}, errs)

	// insert is $set_once: it fills missing properties only.
	_, err = write(d, rec(record.OpInsert, "u1", map[string]any{"plan": "team", "region": "eu"}))
	require.NoError(t, err)
	_, err = write(d, rec(record.OpUpdate, "u2", map[string]any{"plan": "pro"}))
	require.NoError(t, err)
	_, err = write(d, rec(record.OpDelete, "u1", nil))
	require.NoError(t, err)

	assert.Nil(t, srv.Profile("u1"))
	assert.Equal(t, map[string]any{"plan": "pro"}, srv.Profile("u2"))
}

func TestInsertKeepsExistingProperties(t *testing.T) {
	srv := apitest.NewMixpanel(t, token)
	d := open(t, srv, token)
	_, err := write(d, rec(record.OpUpsert, "u1", map[string]any{"plan": "pro"}))
	require.NoError(t, err)
	_, err = write(d, rec(record.OpInsert, "u1", map[string]any{"plan": "team", "region": "eu"}))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"plan": "pro", "region": "eu"}, srv.Profile("u1"))
}

func TestRecordWithoutDistinctIDFailsAlone(t *testing.T) {
	srv := apitest.NewMixpanel(t, token)
	d := open(t, srv, token)
	bad := apitest.Rec(record.OpUpsert, "x", map[string]any{"plan": "pro"}) // keyed by id, not user_id
	errs, err := write(d, bad, rec(record.OpUpsert, "u1", nil))
	require.NoError(t, err)
	require.ErrorContains(t, errs[0], `mixpanel $distinct_id: the record has no field "user_id"`)
	require.NoError(t, errs[1])
	assert.Equal(t, 1, srv.Count())
}

func TestRejectedUpdateFailsTheBatchPermanently(t *testing.T) {
	srv := apitest.NewMixpanel(t, token)
	d := open(t, srv, token)
	srv.Script(apitest.Reply{Status: 200, Body: `{"status":0,"error":"$set must be an object"}`})
	_, err := write(d, rec(record.OpUpsert, "u1", nil))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err), "the delivery splits the batch to find the record")
	assert.Contains(t, err.Error(), "$set must be an object")
}

func TestOversizeBatchIsSplit(t *testing.T) {
	srv := apitest.NewMixpanel(t, token)
	d := open(t, srv, token)
	var recs []record.Record
	for i := range 4500 {
		recs = append(recs, rec(record.OpUpsert, fmt.Sprint("u", i), nil))
	}
	_, err := write(d, recs...)
	require.NoError(t, err)
	assert.Equal(t, 4500, srv.Count())
	assert.Equal(t, 3, srv.Requests())
}

func TestThrottledCarriesRetryAfter(t *testing.T) {
	srv := apitest.NewMixpanel(t, token)
	d := open(t, srv, token)
	srv.Script(apitest.Throttle(2))
	_, err := write(d, rec(record.OpUpsert, "u1", nil))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Equal(t, 2*time.Second, destination.RetryAfter(err))
}

func TestWrongTokenIsPermanentAuthError(t *testing.T) {
	srv := apitest.NewMixpanel(t, token)
	d := open(t, srv, "mp-wrong-token")
	_, err := write(d, rec(record.OpUpsert, "u1", nil))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "mixpanel auth rejected (HTTP 401)")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := mixpanel.Open(map[string]any{}, apitest.Opts)
	require.EqualError(t, err, "mixpanel config.project_token is required")
	_, err = mixpanel.Open(map[string]any{"project_token": "t", "api_host": "ftp://x"}, apitest.Opts)
	require.EqualError(t, err, "mixpanel config.api_host: want an absolute http:// or https:// URL")
}
