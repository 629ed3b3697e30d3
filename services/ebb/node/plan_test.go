package node_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/snapshot"
)

// dryRunID matches the run ids a plan prints, which differ every time.
var dryRunID = regexp.MustCompile(`[0-9A-HJKMNP-TV-Z]{26}`)

func TestSyncPlanShowsTheNextRunAndChangesNothing(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 1000)
	hook, url := sink(t)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Mapping = []config.Mapping{{From: "name", To: "traits.name"}, {From: "score", To: "traits.score"}}
	e.apply(f)
	require.Equal(t, run.Succeeded, e.runSync("customers").State)
	editCustomers(p, 1000)
	received := len(hook.Records())
	ptr, _, err := snapshot.LoadPointer(context.Background(), e.plane.State, "customers")
	require.NoError(t, err)

	out1, code := ebbCLI(t, e, "sync", "plan", "customers", "--limit", "2")
	require.Equal(t, 0, code, out1)
	require.Regexp(t, `adds:\s+49\n`, out1)
	require.Regexp(t, `changes:\s+10\n`, out1)
	require.Regexp(t, `deletes:\s+10\n`, out1)
	require.Regexp(t, `safety stop:\s+none`, out1)
	require.Contains(t, out1, "model rows:     1039 (last snapshot 1000)")
	require.Contains(t, out1, "not shown: the sync does not keep values")
	require.Regexp(t, `upsert added   key=\S+  \{"traits":\{"name":"[^"]+","score":\d+\.\d{4}\}\}`, out1, "exact payloads")
	require.Regexp(t, `delete deleted key=\S+  -`, out1)
	require.Equal(t, 4, strings.Count(out1, " key="), "two records per op: upsert (adds and changes), delete")

	out2, code := ebbCLI(t, e, "sync", "plan", "customers", "--limit", "2")
	require.Equal(t, 0, code, out2)
	require.Equal(t, dryRunID.ReplaceAllString(out1, "RUN"), dryRunID.ReplaceAllString(out2, "RUN"), "the same data plans the same")

	all, code := ebbCLI(t, e, "sync", "plan", "customers", "--all", "--format", "json")
	require.Equal(t, 0, code, all)
	lines := strings.Split(strings.TrimSpace(all), "\n")
	require.Len(t, lines, 1+49+10+10, "the summary, then every record")
	var summary struct {
		Run struct {
			DryRun bool `json:"dry_run"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &summary))
	require.True(t, summary.Run.DryRun)

	// Nothing was sent and the snapshot did not move: the real run sends
	// exactly what the plans showed.
	require.Len(t, hook.Records(), received)
	after, _, err := snapshot.LoadPointer(context.Background(), e.plane.State, "customers")
	require.NoError(t, err)
	require.Equal(t, ptr, after)
	r := e.runSync("customers")
	require.Equal(t, run.Succeeded, r.State, r.Error)
	require.EqualValues(t, 49, r.Planned.Adds)
	require.EqualValues(t, 10, r.Planned.Changes)
	require.EqualValues(t, 10, r.Planned.Deletes)

	// A plan says when the run would stop for approval, and goes on itself.
	strict := 0.001
	f.Syncs[0].Safety.MaxDeleteShare = &strict
	e.apply(f)
	p.exec(`DELETE FROM $S.customers WHERE id <= 100`)
	out, code := ebbCLI(t, e, "sync", "plan", "customers")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "a run would stop for approval: planned deletes are 99 of 1039 rows")
	require.Regexp(t, `delete deleted key=apac,2  -`, out)
}

func TestSyncPlanShowsChangedFieldsWhenValuesAreKept(t *testing.T) {
	p := newPG(t)
	seedCustomers(p, 200)
	_, url := sink(t)
	e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
	f := pipelineConfig(p, config.ModeMirror, url)
	f.Syncs[0].Mapping = []config.Mapping{{From: "name", To: "traits.name"}, {From: "score", To: "traits.score"}, {Const: "wh", To: "source"}}
	f.Syncs[0].KeepValues = true
	e.apply(f)
	require.Equal(t, run.Succeeded, e.runSync("customers").State)

	p.exec(`UPDATE $S.customers SET name = 'Renamed' WHERE id = 6`)
	out, code := ebbCLI(t, e, "sync", "plan", "customers")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "shown under each changed record")
	require.Regexp(t, `upsert changed key=apac,6 .*\n\s+traits\.name: "Ñame 6 🚀 \\"quoted\\"" → "Renamed"\n`, out)
	require.NotContains(t, out, "traits.score:", "unchanged fields are not listed")
}
