package salesforce_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/destination/salesforce"
	"github.com/ebb-etl/ebb/libs/record"
)

const (
	version = "v62.0"
	id      = "3MVG9-client"
	secret  = "sf-client-secret"
)

func newServer(t *testing.T) *apitest.Salesforce {
	return apitest.NewSalesforce(t, version, id, secret, "sf-refresh-token")
}

func open(t *testing.T, srv *apitest.Salesforce, extra map[string]any) *salesforce.Destination {
	t.Helper()
	cfg := map[string]any{
		"instance_url": srv.URL(), "client_id": id, "client_secret": secret,
		"sobject": "Contact", "external_id_field": "Ebb_Id__c",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	d, err := salesforce.Open(cfg, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func write(t *testing.T, d *salesforce.Destination, recs ...record.Record) []error {
	t.Helper()
	errs, err := d.Write(context.Background(), destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: recs})
	require.NoError(t, err)
	require.Len(t, errs, len(recs))
	return errs
}

func TestUpsertInsertUpdateByExternalID(t *testing.T) {
	srv := newServer(t)
	d := open(t, srv, nil)
	errs := write(t, d,
		apitest.Rec(record.OpInsert, "c1", map[string]any{"LastName": "Lovelace", "Email": "ada@x.io"}),
		apitest.Rec(record.OpUpsert, "c2", map[string]any{"LastName": "Hopper"}))
	require.Equal(t, []error{nil, nil}, errs)
	errs = write(t, d, apitest.Rec(record.OpUpdate, "c1", map[string]any{"LastName": "King"}))
	require.NoError(t, errs[0])

	c1 := srv.Record("Contact", "c1")
	assert.Equal(t, "King", c1["LastName"])
	assert.Equal(t, "ada@x.io", c1["Email"])
	assert.Equal(t, 2, srv.Count("Contact"))
	assert.Equal(t, 1, srv.TokenRequests(), "the token is reused")
}

func TestDeleteByExternalID(t *testing.T) {
	srv := newServer(t)
	d := open(t, srv, nil)
	write(t, d, apitest.Rec(record.OpUpsert, "c1", nil), apitest.Rec(record.OpUpsert, "c/2", nil))
	// "gone" never existed: deleting it succeeds; "c/2" needs escaping.
	errs := write(t, d, apitest.Rec(record.OpDelete, "c1", nil), apitest.Rec(record.OpDelete, "c/2", nil), apitest.Rec(record.OpDelete, "gone", nil))
	require.Equal(t, []error{nil, nil, nil}, errs)
	assert.Equal(t, 0, srv.Count("Contact"))
}

func TestPerRecordResultsFailTheirRecordsOnly(t *testing.T) {
	srv := newServer(t)
	d := open(t, srv, nil)
	errs := write(t, d,
		apitest.Rec(record.OpUpsert, "c1", map[string]any{"Email": "nope"}),
		apitest.Rec(record.OpUpsert, "c2", map[string]any{"Email": "b@x.io"}))
	require.EqualError(t, errs[0], "INVALID_EMAIL_ADDRESS: Email: invalid email address: nope")
	require.NoError(t, errs[1])
	assert.Equal(t, 1, srv.Count("Contact"))
}

func TestExpiredSessionRefreshesTheTokenOnce(t *testing.T) {
	srv := newServer(t)
	d := open(t, srv, map[string]any{"refresh_token": "sf-refresh-token"})
	write(t, d, apitest.Rec(record.OpUpsert, "c1", nil))
	srv.ExpireSessions()
	errs := write(t, d, apitest.Rec(record.OpUpsert, "c2", nil))
	require.NoError(t, errs[0])
	assert.Equal(t, 2, srv.TokenRequests())
	assert.Equal(t, 2, srv.Count("Contact"))
}

func TestOversizeBatchesAreSplit(t *testing.T) {
	srv := newServer(t)
	d := open(t, srv, nil)
	var ups, dels []record.Record
	for i := range 450 {
		ups = append(ups, apitest.Rec(record.OpUpsert, fmt.Sprint("c", i), nil))
	}
	for i := range 60 {
		dels = append(dels, apitest.Rec(record.OpDelete, fmt.Sprint("c", i), nil))
	}
	write(t, d, ups...)
	assert.Equal(t, 450, srv.Count("Contact"))
	assert.Equal(t, 1+3, srv.Requests()) // the token, then 200 + 200 + 50
	write(t, d, dels...)
	assert.Equal(t, 390, srv.Count("Contact"))
	assert.Equal(t, 4+3, srv.Requests()) // 25 + 25 + 10
}

func TestThrottledCarriesRetryAfter(t *testing.T) {
	srv := newServer(t)
	d := open(t, srv, nil)
	write(t, d, apitest.Rec(record.OpUpsert, "c1", nil)) // fetch the token first
	srv.Script(apitest.Reply{Status: 503, RetryAfter: 4, Body: `[{"errorCode":"SERVER_UNAVAILABLE","message":"too many requests"}]`})
	_, err := d.Write(context.Background(), destination.Batch{ID: "b", Records: []record.Record{apitest.Rec(record.OpUpsert, "c2", nil)}})
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Equal(t, 4*time.Second, destination.RetryAfter(err))
}

func TestWrongCredentialsArePermanentAuthError(t *testing.T) {
	srv := newServer(t)
	d := open(t, srv, map[string]any{"client_secret": "sf-wrong-secret"})
	_, err := d.Write(context.Background(), destination.Batch{ID: "b", Records: []record.Record{apitest.Rec(record.OpUpsert, "c1", nil)}})
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "salesforce auth rejected (HTTP 400)")
	assert.Contains(t, err.Error(), "invalid_client")
	assert.NotContains(t, err.Error(), "sf-wrong-secret")

	d = open(t, srv, map[string]any{"refresh_token": "revoked"})
	_, err = d.Write(context.Background(), destination.Batch{ID: "b", Records: []record.Record{apitest.Rec(record.OpUpsert, "c1", nil)}})
	require.ErrorContains(t, err, "invalid_grant")
	assert.True(t, destination.IsPermanent(err))
}

func TestConfigErrorsNameTheField(t *testing.T) {
	base := map[string]any{"instance_url": "https://acme.my.salesforce.com", "client_id": "c", "client_secret": "s", "sobject": "Contact"}
	_, err := salesforce.Open(base, apitest.Opts)
	require.EqualError(t, err, "salesforce config.external_id_field is required")
	base["external_id_field"] = "Ext__c"
	base["api_version"] = "62.0"
	_, err = salesforce.Open(base, apitest.Opts)
	require.EqualError(t, err, `salesforce config.api_version: "62.0" is not of the form v62.0`)
}
