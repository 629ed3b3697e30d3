package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/grant"
	"github.com/ebb-etl/ebb/libs/source/postgres"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	"github.com/ebb-etl/ebb/libs/source/redshift"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

// dialects are the two ways a Postgres-compatible source checks grants.
var dialects = map[string]func(ctx context.Context, cfg map[string]any) (*postgres.Source, error){
	"postgres": postgres.Open,
	"redshift": redshift.Open,
}

// roles creates login roles for a test and drops them, and what they own
// or were granted, when it ends. It returns the names in order.
func roles(t *testing.T, e sourcetest.Env, create ...string) []string {
	t.Helper()
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	names := make([]string, len(create))
	for i, c := range create {
		names[i] = "ebb_check_" + suffix + "_" + c
	}
	t.Cleanup(func() {
		for _, n := range names {
			_ = e.Exec(context.Background(), "DROP OWNED BY "+n)
			_ = e.Exec(context.Background(), "DROP ROLE IF EXISTS "+n)
		}
	})
	return names
}

// dsnAs is the test server's DSN logging in as user.
func dsnAs(t *testing.T, user, password string) string {
	u, err := url.Parse(pgtest.DSN())
	require.NoError(t, err)
	u.User = url.UserPassword(user, password)
	return u.String()
}

func find(t *testing.T, findings []source.Finding, check string) source.Finding {
	t.Helper()
	for _, f := range findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding %q in %+v", check, findings)
	return source.Finding{}
}

// TestCheckNamesMissingGrants connects as a role that can read one table
// of two, cannot use a schema and cannot create the snapshot schema: each
// missing grant is named with its fix, and once an administrator runs the
// fixes the check passes.
func TestCheckNamesMissingGrants(t *testing.T) {
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e := pgtest.Env(t)
			schema := strings.TrimSuffix(e.Prefix, ".")
			secret, snap := schema+"_secret", schema+"_snap"
			role := roles(t, e, "reader")[0]
			t.Cleanup(func() {
				_ = e.Exec(ctx, "DROP SCHEMA IF EXISTS "+secret+" CASCADE")
				_ = e.Exec(ctx, "DROP SCHEMA IF EXISTS "+snap+" CASCADE")
			})
			sourcetest.Exec(t, e,
				"CREATE TABLE "+e.Table("users")+" (id int, email text)",
				"CREATE TABLE "+e.Table("orders")+" (id int, user_id int)",
				"CREATE SCHEMA "+secret,
				"CREATE TABLE "+secret+".salaries (id int)",
				"CREATE ROLE "+role+" LOGIN PASSWORD 'pw'",
				"GRANT USAGE ON SCHEMA "+schema+" TO "+role,
				"GRANT SELECT ON "+e.Table("users")+" TO "+role)
			src, err := open(ctx, map[string]any{"dsn": dsnAs(t, role, "pw")})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, src.Close()) })
			req := source.CheckRequest{
				Models: []source.CheckModel{
					{Sync: "crm", SQL: "SELECT u.id, o.id AS oid FROM " + e.Table("users") + " u JOIN " + e.Table("orders") + " o ON o.user_id = u.id"},
					{Sync: "pay", SQL: "WITH s AS (SELECT * FROM " + secret + ".SALARIES) SELECT * FROM s, " + e.Table("users")},
				},
				SnapshotSchema: snap,
			}
			findings, err := src.Check(ctx, req)
			require.NoError(t, err)

			require.True(t, find(t, findings, "SELECT on table "+schema+".users").OK)
			orders := find(t, findings, "SELECT on table "+schema+".orders")
			require.False(t, orders.OK)
			require.Contains(t, orders.Detail, `read by the model of sync "crm"`)
			require.Equal(t, `GRANT SELECT ON TABLE "`+schema+`"."orders" TO "`+role+`";`, orders.Fix)

			usage := find(t, findings, "USAGE on schema "+secret)
			require.False(t, usage.OK)
			require.Equal(t, `GRANT USAGE ON SCHEMA "`+secret+`" TO "`+role+`";`, usage.Fix)
			salaries := find(t, findings, "SELECT on table "+secret+".salaries")
			require.False(t, salaries.OK)
			require.Contains(t, salaries.Detail, `sync "pay"`)
			plan := find(t, findings, `plan the model of sync "pay"`)
			require.Contains(t, plan.Detail, "permission denied for schema "+secret)

			db := find(t, findings, "CREATE on database test, to create the snapshot schema "+snap)
			require.False(t, db.OK)
			require.Equal(t, `CREATE SCHEMA "`+snap+`"; GRANT USAGE, CREATE ON SCHEMA "`+snap+`" TO "`+role+`";`, db.Fix)
			require.Equal(t, 5, source.Missing(findings), "%+v", findings)

			// The administrator runs every fix; then nothing is missing.
			for _, f := range findings {
				if f.Fix != "" {
					sourcetest.Exec(t, e, f.Fix)
				}
			}
			findings, err = src.Check(ctx, req)
			require.NoError(t, err)
			require.Zero(t, source.Missing(findings), "%+v", findings)
			require.True(t, find(t, findings, "USAGE and CREATE on snapshot schema "+snap).OK)
		})
	}
}

// TestSetupSQLWorks runs `ebb source setup-sql postgres` for the test's
// schemas, then logs in as its user: the check passes, the model reads
// and the snapshot schema takes a table.
func TestSetupSQLWorks(t *testing.T) {
	ctx := context.Background()
	e := pgtest.Env(t)
	schema := strings.TrimSuffix(e.Prefix, ".")
	snap := schema + "_snap"
	names := roles(t, e, "user", "role")
	t.Cleanup(func() { _ = e.Exec(ctx, "DROP SCHEMA IF EXISTS "+snap+" CASCADE") })
	sourcetest.Exec(t, e, "CREATE TABLE "+e.Table("accounts")+" (id int, name text)",
		"INSERT INTO "+e.Table("accounts")+" VALUES (1, 'a')")
	setup, err := grant.Setup("postgres", grant.Options{
		User: names[0], Role: names[1], Password: "s3cret", Database: "test",
		Schemas: []string{schema}, SnapshotSchema: snap,
	})
	require.NoError(t, err)
	sourcetest.Exec(t, e, setup)
	// A table created after the setup is readable too (default privileges).
	sourcetest.Exec(t, e, "CREATE TABLE "+e.Table("later")+" (id int)")

	src, err := postgres.Open(ctx, map[string]any{"dsn": dsnAs(t, names[0], "s3cret")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	model := "SELECT a.* FROM " + e.Table("accounts") + " a LEFT JOIN " + e.Table("later") + " l ON l.id = a.id"
	findings, err := src.Check(ctx, source.CheckRequest{
		Models: []source.CheckModel{{Sync: "accounts", SQL: model}}, SnapshotSchema: snap,
	})
	require.NoError(t, err)
	require.Zero(t, source.Missing(findings), "%+v", findings)
	require.Len(t, findings, 5) // connect, usage, two tables, snapshot schema

	_, rows := sourcetest.Rows(t, src, source.Model{SQL: model, PrimaryKey: []string{"id"}}, nil)
	require.Len(t, rows, 1)
	conn, err := pgx.Connect(ctx, dsnAs(t, names[0], "s3cret"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE TABLE "+snap+".probe (i int)")
	require.NoError(t, err)
}
