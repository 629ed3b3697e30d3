package builtin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/builtin"
	"github.com/ebb-etl/ebb/libs/record"
)

func TestTypesMatchConfig(t *testing.T) {
	want := slices.Sorted(slices.Values(config.DestinationTypes))
	assert.Equal(t, want, builtin.Types())
}

// config.URLFields, which validation checks statically, lists every field
// of type url of the specs, and the webhook's url.
func TestURLFieldsMatchConfig(t *testing.T) {
	want := map[string][]string{"webhook": {"url"}}
	for _, typ := range builtin.Types() {
		spec, ok := builtin.Spec(typ)
		if !ok {
			continue
		}
		for _, f := range spec.Fields {
			if f.Type == destination.TypeURL {
				want[typ] = append(want[typ], f.Name)
			}
		}
	}
	got := map[string][]string{}
	for typ, fields := range config.URLFields {
		got[typ] = slices.Sorted(slices.Values(fields))
	}
	for typ := range want {
		slices.Sort(want[typ])
	}
	assert.Equal(t, want, got)
}

func TestOpenWebhookExpandsEnv(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
	}))
	defer srv.Close()
	t.Setenv("EBB_TEST_HOOK_URL", srv.URL)
	t.Setenv("EBB_TEST_HOOK_TOKEN", "tok-123")

	d := config.Destination{Name: "hook", Type: "webhook", Config: map[string]any{
		"url":        "${EBB_TEST_HOOK_URL}/in",
		"headers":    map[string]any{"Authorization": "Bearer ${EBB_TEST_HOOK_TOKEN}"},
		"batch_size": 10,
	}}
	dst, err := builtin.Open(context.Background(), d)
	require.NoError(t, err)
	defer dst.Close()
	_, err = dst.Write(context.Background(), destination.Batch{ID: "b", Records: []record.Record{
		{Op: record.OpUpsert, Key: map[string]any{"id": 1}},
	}})
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-123", gotAuth)
	assert.Equal(t, "Bearer ${EBB_TEST_HOOK_TOKEN}", d.Config["headers"].(map[string]any)["Authorization"], "the stored config keeps its references")
}

func TestOpenErrorsNameTheDestination(t *testing.T) {
	cases := map[string]config.Destination{
		`destination "a": unknown type "kafka" (known: amplitude, braze, hubspot, mixpanel, nats, postgres, salesforce, segment, slack, webhook)`: {Name: "a", Type: "kafka"},
		`destination "b": config.batch_size`: {Name: "b", Type: "webhook", Config: map[string]any{"url": "http://h/", "batch_size": 0}},
		`destination "c": config.secret: environment variable EBB_TEST_UNSET_VAR is not set`: {
			Name: "c", Type: "webhook", Config: map[string]any{"url": "http://h/", "secret": "${EBB_TEST_UNSET_VAR}"}},
		`destination "d": webhook config.url is required`:   {Name: "d", Type: "webhook"},
		`destination "e": postgres config.dsn is required`:  {Name: "e", Type: "postgres", Config: map[string]any{"table": "t"}},
		`destination "f": hubspot config.token is required`: {Name: "f", Type: "hubspot", Config: map[string]any{"object": "contacts"}},
		`destination "g": config.batch_size: 101 is out of range [1, 100]`: {
			Name: "g", Type: "hubspot", Config: map[string]any{"token": "t", "object": "contacts", "id_property": "email", "batch_size": 101}},
	}
	for want, d := range cases {
		_, err := builtin.Open(context.Background(), d)
		require.Error(t, err, want)
		assert.Contains(t, err.Error(), want)
	}
}

func TestOpenEveryHTTPType(t *testing.T) {
	cfgs := map[string]map[string]any{
		"segment":    {"write_key": "k"},
		"hubspot":    {"token": "t", "object": "contacts", "id_property": "email"},
		"salesforce": {"instance_url": "https://acme.my.salesforce.com", "client_id": "c", "client_secret": "s", "sobject": "Contact", "external_id_field": "Ext__c"},
		"braze":      {"endpoint": "https://rest.iad-01.braze.com", "api_key": "k"},
		"mixpanel":   {"project_token": "t"},
		"amplitude":  {"api_key": "k"},
		"slack":      {"webhook_url": "https://hooks.slack.com/services/T/B/X", "text": "hi {{ key }}"},
	}
	for typ, cfg := range cfgs {
		dst, err := builtin.Open(context.Background(), config.Destination{Name: "d", Type: typ, Config: cfg})
		require.NoError(t, err, typ)
		require.NoError(t, dst.Close())
		_, ok := builtin.Spec(typ)
		assert.True(t, ok, typ)
	}
}

func TestCheckModeRefusesMirrorWithoutDeletes(t *testing.T) {
	require.EqualError(t, builtin.CheckMode("amplitude", config.ModeMirror),
		"destination type amplitude cannot delete records: use mode upsert, update, insert or all instead of mirror")
	require.Error(t, builtin.CheckMode("segment", config.ModeMirror))
	require.NoError(t, builtin.CheckMode("amplitude", config.ModeUpsert))
	require.NoError(t, builtin.CheckMode("hubspot", config.ModeMirror))
	require.NoError(t, builtin.CheckMode("webhook", config.ModeMirror))
}
