package hubspot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/destination/hubspot"
	"github.com/ebb-etl/ebb/libs/record"
)

const token = "pat-na1-secret"

func open(t *testing.T, srv *apitest.HubSpot, tok string) *hubspot.Destination {
	t.Helper()
	d, err := hubspot.Open(map[string]any{
		"token": tok, "object": "contacts", "id_property": "email", "base_url": srv.URL(),
	}, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func batch(recs ...record.Record) destination.Batch {
	return destination.Batch{ID: "s/r/deliver/0/0/0", Sync: "s", RunID: "r", Records: recs}
}

func write(t *testing.T, d *hubspot.Destination, recs ...record.Record) []error {
	t.Helper()
	errs, err := d.Write(context.Background(), batch(recs...))
	require.NoError(t, err)
	require.Len(t, errs, len(recs))
	return errs
}

func TestUpsertInsertUpdateByIDProperty(t *testing.T) {
	srv := apitest.NewHubSpot(t, token)
	d := open(t, srv, token)
	errs := write(t, d,
		apitest.Rec(record.OpInsert, "a@x.io", map[string]any{"firstname": "Ann", "score": json.Number("12")}),
		apitest.Rec(record.OpUpsert, "b@x.io", map[string]any{"firstname": "Bob", "vip": true}))
	require.Equal(t, []error{nil, nil}, errs)
	errs = write(t, d, apitest.Rec(record.OpUpdate, "a@x.io", map[string]any{"firstname": "Anna", "score": nil}))
	require.NoError(t, errs[0])

	assert.Equal(t, map[string]string{"email": "a@x.io", "firstname": "Anna", "score": ""}, srv.Object("contacts", "email", "a@x.io"))
	assert.Equal(t, map[string]string{"email": "b@x.io", "firstname": "Bob", "vip": "true"}, srv.Object("contacts", "email", "b@x.io"))
	assert.Equal(t, 2, srv.Count("contacts"))
}

func TestDeleteArchivesByIDProperty(t *testing.T) {
	srv := apitest.NewHubSpot(t, token)
	d := open(t, srv, token)
	write(t, d, apitest.Rec(record.OpUpsert, "a@x.io", nil), apitest.Rec(record.OpUpsert, "b@x.io", nil))
	// c@x.io never existed: deleting it succeeds.
	errs := write(t, d, apitest.Rec(record.OpDelete, "a@x.io", nil), apitest.Rec(record.OpDelete, "c@x.io", nil))
	require.Equal(t, []error{nil, nil}, errs)
	assert.Nil(t, srv.Object("contacts", "email", "a@x.io"))
	assert.NotNil(t, srv.Object("contacts", "email", "b@x.io"))
}

func TestMultiStatusFailsOnlyTheNamedInputs(t *testing.T) {
	srv := apitest.NewHubSpot(t, token)
	d := open(t, srv, token)
	errs := write(t, d,
		apitest.Rec(record.OpUpsert, "ok@x.io", nil),
		apitest.Rec(record.OpUpsert, "not-an-email", nil),
		apitest.Rec(record.OpUpsert, "nested@x.io", map[string]any{"address": map[string]any{"city": "Oslo"}}))
	require.NoError(t, errs[0])
	require.ErrorContains(t, errs[1], "VALIDATION_ERROR: Property values were not valid: Email address not-an-email is invalid")
	require.ErrorContains(t, errs[2], `hubspot property "address" is a map[string]interface {}`)
	assert.Equal(t, 1, srv.Count("contacts"))
}

func TestOversizeBatchIsSplit(t *testing.T) {
	srv := apitest.NewHubSpot(t, token)
	d := open(t, srv, token)
	var recs []record.Record
	for i := range 250 {
		recs = append(recs, apitest.Rec(record.OpUpsert, fmt.Sprintf("u%d@x.io", i), nil))
	}
	for _, err := range write(t, d, recs...) {
		require.NoError(t, err)
	}
	assert.Equal(t, 250, srv.Count("contacts"))
	assert.Equal(t, 3, srv.Requests())
}

func TestThrottledCarriesRetryAfter(t *testing.T) {
	srv := apitest.NewHubSpot(t, token)
	d := open(t, srv, token)
	srv.Script(apitest.Reply{Status: 429, RetryAfter: 10,
		Body: `{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}`})
	_, err := d.Write(context.Background(), batch(apitest.Rec(record.OpUpsert, "a@x.io", nil)))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Equal(t, 10*time.Second, destination.RetryAfter(err))
	assert.Contains(t, err.Error(), "ten_secondly_rolling")
}

func TestBadRequestIsPermanentForTheBatch(t *testing.T) {
	srv := apitest.NewHubSpot(t, token)
	d := open(t, srv, token)
	srv.Script(apitest.Reply{Status: 400, Body: `{"status":"error","category":"VALIDATION_ERROR","message":"Property \"nope\" does not exist"}`})
	_, err := d.Write(context.Background(), batch(apitest.Rec(record.OpUpsert, "a@x.io", map[string]any{"nope": 1})))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "does not exist")
}

func TestWrongTokenIsPermanentAuthError(t *testing.T) {
	srv := apitest.NewHubSpot(t, token)
	d := open(t, srv, "pat-na1-wrong")
	_, err := d.Write(context.Background(), batch(apitest.Rec(record.OpUpsert, "a@x.io", nil)))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "hubspot auth rejected (HTTP 401)")
	assert.NotContains(t, err.Error(), "pat-na1-wrong")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := map[string]map[string]any{
		"hubspot config.token is required":       {"object": "contacts", "id_property": "email"},
		"hubspot config.object is required":      {"token": "t", "id_property": "email"},
		"hubspot config.id_property is required": {"token": "t", "object": "contacts"},
		"hubspot config.token: want a string":    {"token": 5, "object": "contacts", "id_property": "email"},
	}
	for want, cfg := range cases {
		_, err := hubspot.Open(cfg, apitest.Opts)
		require.Error(t, err, want)
		assert.Contains(t, err.Error(), want)
	}
}
