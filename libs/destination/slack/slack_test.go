package slack_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/destination/slack"
	"github.com/ebb-etl/ebb/libs/record"
)

const hook = "/services/T000/B000/s3cr3t"

func open(t *testing.T, url, text string) *slack.Destination {
	t.Helper()
	d, err := slack.Open(map[string]any{"webhook_url": url, "text": text}, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func write(d *slack.Destination, recs ...record.Record) ([]error, error) {
	return d.Write(context.Background(), destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: recs})
}

func TestOneMessagePerRecordForEveryOp(t *testing.T) {
	srv := apitest.NewSlack(t, hook)
	d := open(t, srv.WebhookURL(), "{{ key }}: signup {{email}} on {{ plan.name }} <!>")
	for _, op := range []record.Op{record.OpInsert, record.OpUpsert, record.OpUpdate} {
		errs, err := write(d, apitest.Rec(op, "7", map[string]any{"email": "<a@x.io>", "plan": map[string]any{"name": "pro"}}))
		require.NoError(t, err)
		require.NoError(t, errs[0])
	}
	del := open(t, srv.WebhookURL(), "{{ key.id }} left")
	_, err := write(del, apitest.Rec(record.OpDelete, "8", nil))
	require.NoError(t, err)
	msgs := srv.Messages()
	require.Len(t, msgs, 4)
	assert.Equal(t, "7: signup &lt;a@x.io&gt; on pro <!>", msgs[0])
	assert.Equal(t, "8 left", msgs[3])
}

func TestMissingFieldFailsTheRecordOnly(t *testing.T) {
	srv := apitest.NewSlack(t, hook)
	d := open(t, srv.WebhookURL(), "hello {{ email }}")
	errs, err := write(d, apitest.Rec(record.OpInsert, "1", nil), apitest.Rec(record.OpInsert, "2", map[string]any{"email": "b@x.io"}))
	require.NoError(t, err)
	require.EqualError(t, errs[0], `slack: template: the record has no field "email"`)
	require.NoError(t, errs[1])
	assert.Equal(t, []string{"hello b@x.io"}, srv.Messages())
}

func TestThrottledCarriesRetryAfter(t *testing.T) {
	srv := apitest.NewSlack(t, hook)
	d := open(t, srv.WebhookURL(), "hi")
	srv.Script(apitest.Reply{Status: 429, RetryAfter: 1, Body: "rate_limited"})
	_, err := write(d, apitest.Rec(record.OpInsert, "1", nil))
	require.Error(t, err)
	assert.False(t, destination.IsPermanent(err))
	assert.Equal(t, time.Second, destination.RetryAfter(err))

	// Once a message went out, a later failure fails the rest of the
	// batch's records instead of the batch, so nothing is posted twice.
	srv.Script(apitest.Reply{Status: 200, Body: "ok"}, apitest.Reply{Status: 429, RetryAfter: 1})
	errs, err := write(d, apitest.Rec(record.OpInsert, "1", nil), apitest.Rec(record.OpInsert, "2", nil))
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.Error(t, errs[1])
}

func TestRevokedWebhookIsPermanentAuthErrorWithoutTheURL(t *testing.T) {
	srv := apitest.NewSlack(t, hook)
	d := open(t, srv.URL()+"/services/T000/B000/revoked", "hi")
	_, err := write(d, apitest.Rec(record.OpInsert, "1", nil))
	require.Error(t, err)
	assert.True(t, destination.IsPermanent(err))
	assert.Contains(t, err.Error(), "slack auth rejected (HTTP 404): no_service")
	assert.NotContains(t, err.Error(), "revoked")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := slack.Open(map[string]any{"webhook_url": "https://hooks.slack.com/services/x"}, apitest.Opts)
	require.EqualError(t, err, "slack config.text is required")
	_, err = slack.Open(map[string]any{"webhook_url": "https://hooks.slack.com/services/x", "text": "hi {{ email"}, apitest.Opts)
	require.ErrorContains(t, err, `slack config.text: "{{" without a matching "}}"`)
	_, err = slack.Open(map[string]any{"webhook_url": "hooks.slack.com/services/x", "text": "hi"}, apitest.Opts)
	require.EqualError(t, err, "slack config.webhook_url: want an absolute http:// or https:// URL")
}
