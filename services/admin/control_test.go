package admin_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/admintest"
)

func TestPauseResumeCancel(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()
	seed(t, c, "s1")

	_, err := c.PauseSync(ctx, &adminv1.PauseSyncRequest{Sync: "nope"})
	requireCode(t, err, codes.NotFound, "nope")
	started, err := c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "s1"})
	require.NoError(t, err)
	id := started.GetRun().GetId()

	paused, err := c.PauseSync(ctx, &adminv1.PauseSyncRequest{Sync: "s1"})
	require.NoError(t, err)
	require.Equal(t, "paused", paused.GetRun().GetState())
	require.Equal(t, "pending", paused.GetRun().GetPausedFrom())
	got, err := c.GetSync(ctx, &adminv1.GetSyncRequest{Name: "s1"})
	require.NoError(t, err)
	require.True(t, got.GetPaused())
	require.Equal(t, id, got.GetActiveRunId())

	resumed, err := c.ResumeSync(ctx, &adminv1.ResumeSyncRequest{Sync: "s1"})
	require.NoError(t, err)
	require.Equal(t, "pending", resumed.GetRun().GetState())

	cancelled, err := c.CancelRun(ctx, &adminv1.CancelRunRequest{RunId: id})
	require.NoError(t, err)
	require.Equal(t, "cancelled", cancelled.GetRun().GetState())
	_, err = c.CancelRun(ctx, &adminv1.CancelRunRequest{RunId: id})
	requireCode(t, err, codes.FailedPrecondition, "already cancelled")
	_, err = c.CancelRun(ctx, &adminv1.CancelRunRequest{RunId: run.NewID()})
	requireCode(t, err, codes.NotFound)
	_, err = c.CancelRun(ctx, &adminv1.CancelRunRequest{RunId: "bad id"})
	requireCode(t, err, codes.InvalidArgument, "run_id")
	_, err = c.ApproveRun(ctx, &adminv1.ApproveRunRequest{RunId: id})
	requireCode(t, err, codes.FailedPrecondition, "not awaiting approval")

	// A paused sync refuses manual runs until resumed.
	_, err = c.PauseSync(ctx, &adminv1.PauseSyncRequest{Sync: "s1"})
	require.NoError(t, err)
	_, err = c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "s1"})
	requireCode(t, err, codes.FailedPrecondition, "paused", "ebb sync resume s1")
	noRun, err := c.ResumeSync(ctx, &adminv1.ResumeSyncRequest{Sync: "s1"})
	require.NoError(t, err)
	require.Nil(t, noRun.GetRun())
	_, err = c.TriggerRun(ctx, &adminv1.TriggerRunRequest{Sync: "s1"})
	require.NoError(t, err)
}

// The API refuses what the CLI refuses: a destination URL that is not
// absolute http(s), whoever sends it.
func TestCreateDestinationChecksURL(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	_, err := c.CreateDestination(t.Context(), &adminv1.CreateDestinationRequest{Destination: &adminv1.Destination{
		Name: "hook", Type: "webhook", Config: mustStruct(t, map[string]any{"url": "127.0.0.1:9000/hook"})}})
	requireCode(t, err, codes.InvalidArgument, "config.url", `destination "hook"`, "absolute http:// or https:// URL")
}

func TestApplyChecksTheCatalog(t *testing.T) {
	env := admintest.Start(t, "")
	c := env.Client(t, "")
	ctx := t.Context()
	req := func(destCfg map[string]any, mode string) *adminv1.ApplyRequest {
		s := sync("s1", "wh", "crm")
		s.Mode = mode
		return &adminv1.ApplyRequest{
			Sources:      []*adminv1.Source{source(t, "wh")},
			Destinations: []*adminv1.Destination{{Name: "crm", Type: "hubspot", Config: mustStruct(t, destCfg)}},
			Syncs:        []*adminv1.Sync{s},
		}
	}
	_, err := c.Apply(ctx, req(map[string]any{"object": "contacts"}, "upsert"))
	requireCode(t, err, codes.InvalidArgument, `destination "crm"`, "hubspot config.token is required")
	_, err = c.Apply(ctx, req(map[string]any{"token": "${HUBSPOT_TOKEN}", "object": "contacts", "id_property": "email", "id_field": "email"}, "upsert"))
	require.NoError(t, err)

	amp := req(map[string]any{"api_key": "${AMPLITUDE_KEY}"}, "mirror")
	amp.Destinations[0].Type = "amplitude"
	_, err = c.Apply(ctx, amp)
	requireCode(t, err, codes.InvalidArgument, `sync "s1"`, "amplitude cannot delete records")
}
