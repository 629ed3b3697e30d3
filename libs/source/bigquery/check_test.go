package bigquery_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
)

func findBQ(t *testing.T, findings []source.Finding, check string) source.Finding {
	t.Helper()
	for _, f := range findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding %q in %+v", check, findings)
	return source.Finding{}
}

// TestCheckNamesMissingGrants checks against the local server with one
// table denied and no snapshot dataset, then with jobs denied.
func TestCheckNamesMissingGrants(t *testing.T) {
	ctx := context.Background()
	s := bqtest.New(t, "proj", 100)
	for _, q := range []string{
		"CREATE SCHEMA crm", "CREATE TABLE crm.people (id BIGINT)", "CREATE TABLE crm.orders (id BIGINT, pid BIGINT)",
	} {
		require.NoError(t, s.Exec(ctx, q))
	}
	s.DenyTable("crm.orders", "bigquery.tables.getData")
	src, err := bigquery.Open(ctx, map[string]any{"project": "proj", "dataset": "crm", "endpoint": s.Endpoint()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	req := source.CheckRequest{Models: []source.CheckModel{
		{Sync: "crm", SQL: "SELECT p.id FROM people p JOIN `proj.crm.orders` o ON o.pid = p.id"},
	}}
	findings, err := src.Check(ctx, req)
	require.NoError(t, err)

	require.True(t, findBQ(t, findings, "bigquery.tables.getData on table proj.crm.people").OK)
	orders := findBQ(t, findings, "bigquery.tables.getData on table proj.crm.orders")
	require.False(t, orders.OK)
	require.Contains(t, orders.Detail, `sync "crm"`)
	require.Equal(t, "GRANT `roles/bigquery.dataViewer` ON TABLE `proj.crm.orders` TO \"serviceAccount:<service-account>@proj.iam.gserviceaccount.com\";", orders.Fix)
	dry := findBQ(t, findings, `dry-run the model of sync "crm" (bigquery.jobs.create)`)
	require.False(t, dry.OK)
	require.Contains(t, dry.Detail, "Permission bigquery.tables.getData denied on table proj:crm.orders")
	snap := findBQ(t, findings, "snapshot dataset proj.ebb exists")
	require.False(t, snap.OK)
	require.Contains(t, snap.Fix, "CREATE SCHEMA `proj.ebb`; GRANT `roles/bigquery.dataEditor` ON SCHEMA `proj.ebb`")
	require.Equal(t, 3, source.Missing(findings), "%+v", findings)

	// Granted, and the dataset made: nothing missing.
	s.AllowTable("crm.orders")
	require.NoError(t, s.Exec(ctx, "CREATE SCHEMA ebb"))
	findings, err = src.Check(ctx, req)
	require.NoError(t, err)
	require.Zero(t, source.Missing(findings), "%+v", findings)

	// Without bigquery.jobs.create the dry run names the project grant.
	s.DenyJobs(true)
	findings, err = src.Check(ctx, req)
	require.NoError(t, err)
	dry = findBQ(t, findings, `dry-run the model of sync "crm" (bigquery.jobs.create)`)
	require.False(t, dry.OK)
	require.Equal(t, "gcloud projects add-iam-policy-binding proj --member=serviceAccount:<service-account>@proj.iam.gserviceaccount.com --role=roles/bigquery.jobUser", dry.Fix)
}
