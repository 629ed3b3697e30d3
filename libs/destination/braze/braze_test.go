package braze_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/destination/braze"
	"github.com/ebb-etl/ebb/libs/record"
)

const key = "braze-rest-key"

func open(t *testing.T, srv *apitest.Braze, k string) *braze.Destination {
	t.Helper()
	d, err := braze.Open(map[string]any{"endpoint": srv.URL(), "api_key": k}, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func write(t *testing.T, d *braze.Destination, recs ...record.Record) []error {
	t.Helper()
	errs, err := d.Write(context.Background(), destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: recs})
	require.NoError(t, err)
	require.Len(t, errs, len(recs))
	return errs
}

func TestAttributesForUpsertInsertUpdate(t *testing.T) {
	srv := apitest.NewBraze(t, key)
	d := open(t, srv, key)
	errs := write(t, d,
		apitest.Rec(record.OpUpsert, "u1", map[string]any{"first_name": "Ann", "email": "a@x.io"}),
		apitest.Rec(record.OpInsert, "u2", map[string]any{"first_name": "Bob"}),
		// An update of a user Braze does not have creates nobody.
		apitest.Rec(record.OpUpdate, "u3", map[string]any{"first_name": "Cy"}))
	require.Equal(t, []error{nil, nil, nil}, errs)
	errs = write(t, d, apitest.Rec(record.OpUpdate, "u1", map[string]any{"first_name": "Anna"}))
	require.NoError(t, errs[0])

	assert.Equal(t, map[string]any{"first_name": "Anna", "email": "a@x.io"}, srv.User("u1"))
	assert.Equal(t, map[string]any{"first_name": "Bob"}, srv.User("u2"))
	assert.Nil(t, srv.User("u3"))
	for _, h := range srv.Headers() {
		assert.Equal(t, "Bearer "+key, h.Get("Authorization"))
	}
}

func TestDeleteUsers(t *testing.T) {
	srv := apitest.NewBraze(t, key)
	d := open(t, srv, key)
	write(t, d, apitest.Rec(record.OpUpsert, "u1", nil), apitest.Rec(record.OpUpsert, "u2", nil))
	errs := write(t, d, apitest.Rec(record.OpDelete, "u1", nil))
	require.NoError(t, errs[0])
	assert.Nil(t, srv.User("u1"))
	assert.NotNil(t, srv.User("u2"))
}

func TestObjectErrorsFailTheirRecordsOnly(t *testing.T) {
	srv := apitest.NewBraze(t, key)
	d := open(t, srv, key)
	errs := write(t, d,
		apitest.Rec(record.OpUpsert, "u1", map[string]any{"email": "nope"}),
		apitest.Rec(record.OpUpsert, "u2", map[string]any{"email": "b@x.io"}))
	require.EqualError(t, errs[0], "Invalid 'email' field")
	require.NoError(t, errs[1])
	assert.NotNil(t, srv.User("u2"))

	// When no object is valid, Braze answers 400, still naming them.
	errs = write(t, d, apitest.Rec(record.OpUpsert, "u3", map[string]any{"email": "nope"}))
	require.EqualError(t, errs[0], "Invalid 'email' field")
}

func TestOversizeBatchesAreSplit(t *testing.T) {
	srv := apitest.NewBraze(t, key)
	d := open(t, srv, key)
	var ups, dels []record.Record
	for i := range 160 {
		ups = append(ups, apitest.Rec(record.OpUpsert, fmt.Sprint("u", i), nil))
		dels = append(dels, apitest.Rec(record.OpDelete, fmt.Sprint("u", i), nil))
	}
	write(t, d, ups...)
	assert.Equal(t, 160, srv.Count())
	assert.Equal(t, 3, srv.Requests()) // 75 + 75 + 10
	write(t, d, dels...)
	assert.Equal(t, 0, srv.Count())
	assert.Equal(t, 3+4, srv.Requests()) // 50 × 3 + 10
}

func TestThrottledCarriesRetryAfter(t *testing.T) {
	srv := apitest.NewBraze(t, key)
	d := open(t, srv, key)
	srv.Script(apitest.Throttle(3))
	_, err := d.Write(context.Background(), destination.Batch{ID: "b", Records: []record.Record{apitest.Rec(record.OpUpsert, "u1", nil)}})
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Equal(t, 3*time.Second, destination.RetryAfter(err))
}

func TestWrongKeyIsPermanentAuthErrorWithoutTheKey(t *testing.T) {
	srv := apitest.NewBraze(t, key)
	d := open(t, srv, "braze-wrong-key")
	_, err := d.Write(context.Background(), destination.Batch{ID: "b", Records: []record.Record{apitest.Rec(record.OpUpsert, "u1", nil)}})
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "braze auth rejected (HTTP 401): {\"message\":\"Invalid API key: ****\"}")
	assert.NotContains(t, err.Error(), "braze-wrong-key")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := braze.Open(map[string]any{"api_key": "k"}, apitest.Opts)
	require.EqualError(t, err, "braze config.endpoint is required")
	_, err = braze.Open(map[string]any{"endpoint": "https://rest.iad-01.braze.com", "api_key": ""}, apitest.Opts)
	require.EqualError(t, err, "braze config.api_key is required")
}
