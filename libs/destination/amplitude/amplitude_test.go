package amplitude_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/amplitude"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/record"
)

const key = "amp-api-key"

func open(t *testing.T, srv *apitest.Amplitude, k string) *amplitude.Destination {
	t.Helper()
	d, err := amplitude.Open(map[string]any{"api_host": srv.URL(), "api_key": k}, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func write(d *amplitude.Destination, recs ...record.Record) ([]error, error) {
	return d.Write(context.Background(), destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: recs})
}

func TestSetAndSetOnce(t *testing.T) {
	srv := apitest.NewAmplitude(t, key)
	d := open(t, srv, key)
	errs, err := write(d,
		apitest.Rec(record.OpUpsert, "user-1", map[string]any{"plan": "pro"}),
		apitest.Rec(record.OpUpdate, "user-2", map[string]any{"plan": "free"}))
	require.NoError(t, err)
	require.Equal(t, []error{nil, nil}, errs)
	_, err = write(d, apitest.Rec(record.OpInsert, "user-1", map[string]any{"plan": "team", "region": "eu"}))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"plan": "pro", "region": "eu"}, srv.User("user-1"))
	assert.Equal(t, map[string]any{"plan": "free"}, srv.User("user-2"))
}

func TestDeleteIsUnsupportedPerRecord(t *testing.T) {
	srv := apitest.NewAmplitude(t, key)
	d := open(t, srv, key)
	errs, err := write(d, apitest.Rec(record.OpDelete, "user-1", nil), apitest.Rec(record.OpUpsert, "user-2", nil))
	require.NoError(t, err)
	require.ErrorContains(t, errs[0], "cannot delete users")
	require.NoError(t, errs[1])
	assert.False(t, amplitude.Spec.Supports(record.OpDelete))
}

func TestRejectedRequestIsPermanentForTheBatch(t *testing.T) {
	srv := apitest.NewAmplitude(t, key)
	d := open(t, srv, key)
	srv.Script(apitest.Reply{Status: 400, Body: "identification 0: user_id or device_id is required"})
	_, err := write(d, apitest.Rec(record.OpUpsert, "user-1", nil))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.NotContains(t, err.Error(), "auth")
}

func TestOversizeBatchIsSplit(t *testing.T) {
	srv := apitest.NewAmplitude(t, key)
	d := open(t, srv, key)
	var recs []record.Record
	for i := range 4001 {
		recs = append(recs, apitest.Rec(record.OpUpsert, fmt.Sprint("user-", i), nil))
	}
	_, err := write(d, recs...)
	require.NoError(t, err)
	assert.Equal(t, 4001, srv.Count())
	assert.Equal(t, 3, srv.Requests())
}

func TestThrottledCarriesRetryAfter(t *testing.T) {
	srv := apitest.NewAmplitude(t, key)
	d := open(t, srv, key)
	srv.Script(apitest.Throttle(15))
	_, err := write(d, apitest.Rec(record.OpUpsert, "user-1", nil))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Equal(t, 15*time.Second, destination.RetryAfter(err))
}

func TestWrongKeyIsPermanentAuthError(t *testing.T) {
	srv := apitest.NewAmplitude(t, key)
	d := open(t, srv, "amp-wrong-key")
	_, err := write(d, apitest.Rec(record.OpUpsert, "user-1", nil))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "amplitude auth rejected (HTTP 400): invalid api_key")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := amplitude.Open(map[string]any{"api_key": 42}, apitest.Opts)
	require.EqualError(t, err, "amplitude config.api_key: want a string, got int")
}
