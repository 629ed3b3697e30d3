package snowflake_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
)

func findSF(t *testing.T, findings []source.Finding, check string) source.Finding {
	t.Helper()
	for _, f := range findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding %q in %+v", check, findings)
	return source.Finding{}
}

// TestCheckNamesMissingGrants checks a role that inherits part of what it
// needs from another role and lacks the rest: each missing grant is named
// with its fix, and with the fixes applied the check passes.
func TestCheckNamesMissingGrants(t *testing.T) {
	ctx := context.Background()
	s, e := sftest.Env(t)
	base := []sftest.Grant{
		{Privilege: "USAGE", GrantedOn: "ROLE", Name: "EBB_BASE"},
		{Privilege: "USAGE", GrantedOn: "DATABASE", Name: "EBB"},
	}
	inherited := []sftest.Grant{
		{Privilege: "USAGE", GrantedOn: "SCHEMA", Name: "EBB.PUBLIC"},
		{Privilege: "SELECT", GrantedOn: "TABLE", Name: "EBB.PUBLIC.PEOPLE"},
	}
	s.SetGrants("EBB_READER", base...)
	s.SetGrants("EBB_BASE", inherited...)
	src, err := snowflake.Open(ctx, e.Config)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	req := source.CheckRequest{Models: []source.CheckModel{
		{Sync: "crm", SQL: "SELECT * FROM people p JOIN sales.orders o ON o.pid = p.id"},
	}}
	findings, err := src.Check(ctx, req)
	require.NoError(t, err)

	require.True(t, findSF(t, findings, "SELECT on table EBB.PUBLIC.PEOPLE").OK)
	wh := findSF(t, findings, "USAGE on warehouse EBB_WH")
	require.False(t, wh.OK)
	require.Equal(t, "GRANT USAGE ON WAREHOUSE EBB_WH TO ROLE EBB_READER;", wh.Fix)
	schema := findSF(t, findings, "USAGE on schema EBB.SALES")
	require.Equal(t, "GRANT USAGE ON SCHEMA EBB.SALES TO ROLE EBB_READER;", schema.Fix)
	orders := findSF(t, findings, "SELECT on table EBB.SALES.ORDERS")
	require.False(t, orders.OK)
	require.Contains(t, orders.Detail, `sync "crm"`)
	require.Equal(t, "GRANT SELECT ON TABLE EBB.SALES.ORDERS TO ROLE EBB_READER;", orders.Fix)
	snap := findSF(t, findings, "USAGE and CREATE TABLE on snapshot schema EBB.EBB")
	require.Equal(t, "CREATE SCHEMA IF NOT EXISTS EBB.EBB; GRANT USAGE, CREATE TABLE ON SCHEMA EBB.EBB TO ROLE EBB_READER;", snap.Fix)
	require.Equal(t, 4, source.Missing(findings), "%+v", findings)

	// The administrator grants what was missing.
	s.SetGrants("EBB_READER", append(base,
		sftest.Grant{Privilege: "USAGE", GrantedOn: "WAREHOUSE", Name: "EBB_WH"},
		sftest.Grant{Privilege: "USAGE", GrantedOn: "SCHEMA", Name: "EBB.SALES"},
		sftest.Grant{Privilege: "SELECT", GrantedOn: "VIEW", Name: "EBB.SALES.ORDERS"},
		sftest.Grant{Privilege: "OWNERSHIP", GrantedOn: "SCHEMA", Name: "EBB.EBB"})...)
	findings, err = src.Check(ctx, req)
	require.NoError(t, err)
	require.Zero(t, source.Missing(findings), "%+v", findings)
}

// TestCheckUnknownRole fails with Snowflake's message when SHOW GRANTS
// cannot see the role.
func TestCheckUnknownRole(t *testing.T) {
	_, e := sftest.Env(t)
	src, err := snowflake.Open(context.Background(), e.Config)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	_, err = src.Check(context.Background(), source.CheckRequest{})
	require.ErrorContains(t, err, "Role 'EBB_READER' does not exist or not authorized.")
}
