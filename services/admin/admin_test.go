package admin_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin"
	"github.com/ebb-etl/ebb/services/admin/internal/admintest"
)

func requireCode(t *testing.T, err error, code codes.Code, contains ...string) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, status.Code(err), "error: %v", err)
	for _, s := range contains {
		require.Contains(t, status.Convert(err).Message(), s)
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

func source(t *testing.T, name string) *adminv1.Source {
	return &adminv1.Source{Name: name, Type: "postgres", Config: mustStruct(t, map[string]any{"dsn": "${WAREHOUSE_DSN}"})}
}

func destination(t *testing.T, name string) *adminv1.Destination {
	return &adminv1.Destination{Name: name, Type: "webhook", Config: mustStruct(t, map[string]any{"url": "http://127.0.0.1:9/hook"})}
}

func sync(name, src, dst string) *adminv1.Sync {
	return &adminv1.Sync{
		Name: name, Source: src, Destination: dst, Mode: "upsert",
		Model:   &adminv1.Model{Sql: "SELECT id, email FROM customers", PrimaryKey: []string{"id"}},
		Mapping: []*adminv1.Mapping{{From: "email", To: "traits.email"}, {Const: structpb.NewStringValue("warehouse"), To: "context.source"}},
	}
}

// seed creates a source, a destination and a sync using them.
func seed(t *testing.T, c adminv1.AdminServiceClient, name string) {
	t.Helper()
	ctx := t.Context()
	_, err := c.CreateSource(ctx, &adminv1.CreateSourceRequest{Source: source(t, "wh")})
	require.NoError(t, err)
	_, err = c.CreateDestination(ctx, &adminv1.CreateDestinationRequest{Destination: destination(t, "hook")})
	require.NoError(t, err)
	_, err = c.CreateSync(ctx, &adminv1.CreateSyncRequest{Sync: sync(name, "wh", "hook")})
	require.NoError(t, err)
}

func TestResources(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()

	_, err := c.CreateSync(ctx, &adminv1.CreateSyncRequest{Sync: sync("s1", "wh", "hook")})
	requireCode(t, err, codes.FailedPrecondition, `source "wh" does not exist`)

	seed(t, c, "s1")
	_, err = c.CreateSource(ctx, &adminv1.CreateSourceRequest{Source: source(t, "wh")})
	requireCode(t, err, codes.AlreadyExists, `source "wh" already exists`)

	got, err := c.GetSync(ctx, &adminv1.GetSyncRequest{Name: "s1"})
	require.NoError(t, err)
	require.Equal(t, "warehouse", got.GetSync().GetMapping()[1].GetConst().GetStringValue())
	syncs, err := c.ListSyncs(ctx, &adminv1.ListSyncsRequest{})
	require.NoError(t, err)
	require.Len(t, syncs.GetSyncs(), 1)

	_, err = c.DeleteSource(ctx, &adminv1.DeleteSourceRequest{Name: "wh"})
	requireCode(t, err, codes.FailedPrecondition, `used by sync "s1"`)
	_, err = c.DeleteDestination(ctx, &adminv1.DeleteDestinationRequest{Name: "hook"})
	requireCode(t, err, codes.FailedPrecondition, `used by sync "s1"`)

	updated := sync("s1", "wh", "hook")
	updated.Mode = "mirror"
	_, err = c.UpdateSync(ctx, &adminv1.UpdateSyncRequest{Sync: updated})
	require.NoError(t, err)
	stored, err := env.Configs.Sync(ctx, "s1")
	require.NoError(t, err)
	require.Equal(t, config.ModeMirror, stored.Mode)
	_, err = c.UpdateSource(ctx, &adminv1.UpdateSourceRequest{Source: source(t, "nope")})
	requireCode(t, err, codes.NotFound)

	_, err = c.DeleteSync(ctx, &adminv1.DeleteSyncRequest{Name: "s1"})
	require.NoError(t, err)
	_, err = c.DeleteSource(ctx, &adminv1.DeleteSourceRequest{Name: "wh"})
	require.NoError(t, err)
	_, err = c.GetSource(ctx, &adminv1.GetSourceRequest{Name: "wh"})
	requireCode(t, err, codes.NotFound)
	_, err = c.DeleteSync(ctx, &adminv1.DeleteSyncRequest{Name: "s1"})
	requireCode(t, err, codes.NotFound)
}

func TestRedaction(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()
	cfg := map[string]any{"dsn": "postgres://ebb:hunter2@db:5432/wh", "password": "${PG_PASSWORD}", "host": "db"}
	_, err := c.CreateSource(ctx, &adminv1.CreateSourceRequest{
		Source: &adminv1.Source{Name: "wh", Type: "postgres", Config: mustStruct(t, cfg)},
	})
	require.NoError(t, err)

	want := map[string]any{"dsn": "postgres://ebb:****@db:5432/wh", "password": "${PG_PASSWORD}", "host": "db"}
	got, err := c.GetSource(ctx, &adminv1.GetSourceRequest{Name: "wh"})
	require.NoError(t, err)
	require.Equal(t, want, got.GetSource().GetConfig().AsMap())
	list, err := c.ListSources(ctx, &adminv1.ListSourcesRequest{})
	require.NoError(t, err)
	require.Equal(t, want, list.GetSources()[0].GetConfig().AsMap())

	stored, err := env.Configs.Source(ctx, "wh")
	require.NoError(t, err)
	require.Equal(t, cfg, stored.Config, "stored as given, ${VAR} unexpanded")
	require.NotContains(t, env.Logs.String(), "hunter2")
}

func TestApply(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()
	req := &adminv1.ApplyRequest{
		Sources:      []*adminv1.Source{source(t, "wh")},
		Destinations: []*adminv1.Destination{destination(t, "hook")},
		Syncs:        []*adminv1.Sync{sync("s1", "wh", "hook"), sync("s2", "wh", "hook")},
	}
	resp, err := c.Apply(ctx, req)
	require.NoError(t, err)
	require.Equal(t, []string{
		"+ create source wh", "+ create destination hook", "+ create sync s1", "+ create sync s2",
	}, changeLines(resp))
	f, err := env.Configs.Load(ctx)
	require.NoError(t, err)
	require.Len(t, f.Syncs, 2)

	resp, err = c.Apply(ctx, req)
	require.NoError(t, err)
	require.Empty(t, resp.GetChanges(), "applying again changes nothing")

	req.Syncs = req.Syncs[:1]
	req.Syncs[0].Mode = "mirror"
	req.DryRun = true
	resp, err = c.Apply(ctx, req)
	require.NoError(t, err)
	require.Equal(t, []string{"~ update sync s1 (mode)", "- delete sync s2"}, changeLines(resp))
	after, err := env.Configs.Load(ctx)
	require.NoError(t, err)
	require.Equal(t, f, after, "a dry run writes nothing")

	req.DryRun = false
	_, err = c.Apply(ctx, req)
	require.NoError(t, err)
	f, err = env.Configs.Load(ctx)
	require.NoError(t, err)
	require.Len(t, f.Syncs, 1)
	require.Equal(t, config.ModeMirror, f.Syncs[0].Mode)
}

func changeLines(resp *adminv1.ApplyResponse) []string {
	var lines []string
	for _, c := range resp.GetChanges() {
		ch := config.Change{Kind: config.Kind(c.GetKind()), Name: c.GetName(), Action: config.Action(c.GetAction()), Fields: c.GetFields()}
		lines = append(lines, ch.String())
	}
	return lines
}

func TestValidation(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()

	_, err := c.CreateSource(ctx, &adminv1.CreateSourceRequest{Source: source(t, "bad name")})
	requireCode(t, err, codes.InvalidArgument, "source.name", `"bad name"`)
	_, err = c.CreateSource(ctx, &adminv1.CreateSourceRequest{Source: &adminv1.Source{Name: "wh", Type: "oracle"}})
	requireCode(t, err, codes.InvalidArgument, "type", "oracle")
	_, err = c.CreateSource(ctx, &adminv1.CreateSourceRequest{})
	requireCode(t, err, codes.InvalidArgument, "source is required")

	seed(t, c, "s1")
	bad := sync("s2", "wh", "hook")
	bad.Mode = "sideways"
	_, err = c.CreateSync(ctx, &adminv1.CreateSyncRequest{Sync: bad})
	requireCode(t, err, codes.InvalidArgument, "mode", "sideways")
	bad = sync("s2", "wh", "hook")
	bad.Mapping[0].To = ""
	_, err = c.CreateSync(ctx, &adminv1.CreateSyncRequest{Sync: bad})
	requireCode(t, err, codes.InvalidArgument, "mapping[0].to")

	_, err = c.Apply(ctx, &adminv1.ApplyRequest{Syncs: []*adminv1.Sync{sync("s1", "wh", "hook")}})
	requireCode(t, err, codes.InvalidArgument, "source", "wh")
	_, err = c.Apply(ctx, &adminv1.ApplyRequest{Sources: []*adminv1.Source{source(t, "a.b")}})
	requireCode(t, err, codes.InvalidArgument, "sources[0].name")
	_, err = c.GetRun(ctx, &adminv1.GetRunRequest{RunId: "run.*"})
	requireCode(t, err, codes.InvalidArgument, "run_id")
	_, err = c.ListRuns(ctx, &adminv1.ListRunsRequest{Limit: -1})
	requireCode(t, err, codes.InvalidArgument, "limit")
}

func TestAuth(t *testing.T) {
	env := admintest.Start(t, "s3cret")
	ctx := t.Context()

	_, err := env.Client(t, "").ListSyncs(ctx, &adminv1.ListSyncsRequest{})
	requireCode(t, err, codes.Unauthenticated)
	_, err = env.Client(t, "wrong").ListSyncs(ctx, &adminv1.ListSyncsRequest{})
	requireCode(t, err, codes.Unauthenticated)
	_, err = env.Client(t, "s3cret").ListSyncs(ctx, &adminv1.ListSyncsRequest{})
	require.NoError(t, err)

	health, err := healthpb.NewHealthClient(admintest.Conn(t, env.Addr, "")).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "health checks need no token")
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, health.GetStatus())
	require.NotContains(t, env.Logs.String(), "s3cret")
	require.NotContains(t, env.Logs.String(), "wrong")
}

func TestRefusesNonLoopbackWithoutToken(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:7070"} {
		err := admin.Run(t.Context(), admin.Deps{Listen: listen, Log: zerolog.Nop()})
		require.ErrorContains(t, err, "without a token", listen)
	}
}

func TestRecoversPanics(t *testing.T) {
	ns := natstest.Start(t)
	// No config store: calls that need it panic.
	addr := admintest.Serve(t, admin.Deps{JS: ns.JS, Log: zerolog.Nop()})
	c := adminv1.NewAdminServiceClient(admintest.Conn(t, addr, ""))
	_, err := c.ListSyncs(t.Context(), &adminv1.ListSyncsRequest{})
	requireCode(t, err, codes.Internal)
	_, err = c.ListSyncs(t.Context(), &adminv1.ListSyncsRequest{})
	requireCode(t, err, codes.Internal, "internal error")
}

func TestRuns(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()
	seed(t, c, "s1")

	_, err := c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "nope"})
	requireCode(t, err, codes.NotFound)

	first, err := c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "s1"})
	require.NoError(t, err)
	r1 := first.GetRun()
	require.Equal(t, "pending", r1.GetState())
	require.Equal(t, "manual", r1.GetTrigger())
	require.NotNil(t, r1.GetCreatedAt())
	require.Nil(t, r1.GetFinishedAt())

	_, err = c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "s1"})
	requireCode(t, err, codes.FailedPrecondition, r1.GetId())

	_, err = env.Runs.Update(ctx, "s1", r1.GetId(), func(r *run.Run) error {
		r.State, r.Planned.Adds, r.Adds.Delivered = run.Succeeded, 3, 3
		return nil
	})
	require.NoError(t, err)
	got, err := c.GetRun(ctx, &adminv1.GetRunRequest{RunId: r1.GetId()})
	require.NoError(t, err)
	require.Equal(t, "succeeded", got.GetRun().GetState())
	require.Equal(t, int64(3), got.GetRun().GetPlanned().GetAdds())
	require.Equal(t, int64(3), got.GetRun().GetAdds().GetDelivered())
	require.NotNil(t, got.GetRun().GetFinishedAt())

	second, err := c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "s1"})
	require.NoError(t, err)
	list, err := c.ListRuns(ctx, &adminv1.ListRunsRequest{Sync: "s1"})
	require.NoError(t, err)
	require.Equal(t, []string{second.GetRun().GetId(), r1.GetId()}, runIDs(list))
	list, err = c.ListRuns(ctx, &adminv1.ListRunsRequest{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []string{second.GetRun().GetId()}, runIDs(list))
	list, err = c.ListRuns(ctx, &adminv1.ListRunsRequest{Sync: "other"})
	require.NoError(t, err)
	require.Empty(t, list.GetRuns())

	_, err = c.GetRun(ctx, &adminv1.GetRunRequest{RunId: run.NewID()})
	requireCode(t, err, codes.NotFound)
}

func runIDs(resp *adminv1.ListRunsResponse) []string {
	var ids []string
	for _, r := range resp.GetRuns() {
		ids = append(ids, r.GetId())
	}
	return ids
}

func TestListFailures(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()
	seed(t, c, "s1")
	started, err := c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "s1"})
	require.NoError(t, err)
	id := started.GetRun().GetId()

	resp, err := c.ListFailures(ctx, &adminv1.ListFailuresRequest{RunId: id})
	require.NoError(t, err)
	require.Empty(t, resp.GetFailures())

	publishFailures(t, env, "s1", id)
	resp, err = c.ListFailures(ctx, &adminv1.ListFailuresRequest{RunId: id})
	require.NoError(t, err)
	require.False(t, resp.GetTruncated())
	require.Len(t, resp.GetFailures(), 2)
	require.Equal(t, "42", resp.GetFailures()[0].GetKey())
	require.Equal(t, "upsert", resp.GetFailures()[0].GetOp())
	require.Equal(t, "422: email is invalid", resp.GetFailures()[0].GetError())
	require.Equal(t, "7,eu", resp.GetFailures()[1].GetKey())

	resp, err = c.ListFailures(ctx, &adminv1.ListFailuresRequest{RunId: id, Limit: 1})
	require.NoError(t, err)
	require.True(t, resp.GetTruncated())
	require.Len(t, resp.GetFailures(), 1)

	_, err = c.ListFailures(ctx, &adminv1.ListFailuresRequest{RunId: run.NewID()})
	requireCode(t, err, codes.NotFound)
}

// publishFailures records two failed results and one delivered.
func publishFailures(t *testing.T, env *admintest.Env, sync, runID string) {
	t.Helper()
	rb := record.ResultBatch{Sync: sync, RunID: runID, Results: []record.Result{
		{KeyEnc: record.AppendInt(nil, 42), Op: record.OpUpsert, Status: record.Failed, Error: "422: email is invalid"},
		{KeyEnc: record.AppendInt(nil, 43), Op: record.OpUpsert, Status: record.Delivered},
		{KeyEnc: record.AppendString(record.AppendInt(nil, 7), "eu"), Op: record.OpDelete, Status: record.Failed, Error: "404"},
	}}
	require.NoError(t, run.RecordFailures(context.Background(), env.NATS.Bus, rb))
}
