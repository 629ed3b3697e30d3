package nats_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/apitest"
	"github.com/ebb-etl/ebb/libs/destination/nats"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
)

func open(t *testing.T, cfg map[string]any) *nats.Destination {
	t.Helper()
	d, err := nats.Open(cfg, apitest.Opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func batch(recs ...record.Record) destination.Batch {
	return destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: recs}
}

func TestCorePublishOneMessagePerRecord(t *testing.T) {
	srv := natstest.Start(t)
	var mu sync.Mutex
	got := map[string]map[string]any{}
	sub, err := srv.NC.Subscribe("crm.>", func(m *natsgo.Msg) {
		var v map[string]any
		_ = json.Unmarshal(m.Data, &v)
		mu.Lock()
		got[m.Subject] = v
		mu.Unlock()
	})
	require.NoError(t, err)
	require.NoError(t, srv.NC.Flush())
	defer func() { _ = sub.Unsubscribe() }()

	d := open(t, map[string]any{"url": srv.URL, "subject": "crm.contacts.{{ key }}"})
	errs, err := d.Write(context.Background(), batch(
		apitest.Rec(record.OpUpsert, "1", map[string]any{"email": "a@x.io"}),
		apitest.Rec(record.OpDelete, "a.b c", nil),
		apitest.Rec(record.OpUpsert, "", nil)))
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.ErrorContains(t, errs[2], `"crm.contacts." is not a valid subject`)

	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 }, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, map[string]any{"sync": "s", "run_id": "r", "op": "upsert", "key": map[string]any{"id": "1"}, "data": map[string]any{"email": "a@x.io"}}, got["crm.contacts.1"])
	assert.Equal(t, map[string]any{"sync": "s", "run_id": "r", "op": "delete", "key": map[string]any{"id": "a.b c"}}, got["crm.contacts.a_b_c"])
}

func TestJetStreamPublishIsAckedAndDeduplicated(t *testing.T) {
	srv := natstest.Start(t)
	ctx := context.Background()
	stream, err := srv.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "CRM", Subjects: []string{"crm.>"}, Duplicates: time.Minute})
	require.NoError(t, err)

	d := open(t, map[string]any{"url": srv.URL, "subject": "{{ area }}.{{ key }}", "jetstream": true})
	b := batch(
		apitest.Rec(record.OpUpsert, "1", map[string]any{"area": "crm"}),
		apitest.Rec(record.OpInsert, "2", map[string]any{"area": "crm"}),
		apitest.Rec(record.OpUpdate, "3", map[string]any{"area": "billing"}))
	errs, err := d.Write(ctx, b)
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.EqualError(t, errs[2], `nats: no stream captures subject "billing.3"`)

	// The same batch again, as after a crash: the stream drops it.
	_, err = d.Write(ctx, b)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), info.State.Msgs)
}

func TestOversizeMessageFailsAlone(t *testing.T) {
	srv := natstest.Start(t)
	d := open(t, map[string]any{"url": srv.URL, "subject": "crm.{{ key }}"})
	errs, err := d.Write(context.Background(), batch(
		apitest.Rec(record.OpUpsert, "1", map[string]any{"bio": strings.Repeat("x", 2<<20)}),
		apitest.Rec(record.OpUpsert, "2", nil)))
	require.NoError(t, err)
	require.ErrorContains(t, errs[0], "over the server's max_payload")
	require.NoError(t, errs[1])
}

func TestWrongCredentialsAreAnAuthError(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, Authorization: "s3cr3t", NoSigs: true})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(5*time.Second))
	t.Cleanup(srv.Shutdown)
	url := strings.Replace(srv.ClientURL(), "nats://", "nats://wrong-token@", 1)
	_, err = nats.Open(map[string]any{"url": url, "subject": "x"}, apitest.Opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nats auth rejected")
	assert.NotContains(t, err.Error(), "wrong-token")

	ok := strings.Replace(srv.ClientURL(), "nats://", "nats://s3cr3t@", 1)
	d := open(t, map[string]any{"url": ok, "subject": "x"})
	_, err = d.Write(context.Background(), batch(apitest.Rec(record.OpUpsert, "1", nil)))
	require.NoError(t, err)
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := nats.Open(map[string]any{"subject": "x"}, apitest.Opts)
	require.EqualError(t, err, "nats config.url is required")
	_, err = nats.Open(map[string]any{"url": "nats://127.0.0.1:1", "subject": "x", "jetstream": "yes"}, apitest.Opts)
	require.EqualError(t, err, "nats config.jetstream: want true or false, got string")
}
