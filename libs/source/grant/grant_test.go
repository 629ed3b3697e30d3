package grant

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSetupNamesEveryGrant(t *testing.T) {
	for typ, want := range map[string][]string{
		"postgres": {`CREATE ROLE "ebb_role" NOLOGIN;`, `GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "ebb_role";`,
			`GRANT USAGE, CREATE ON SCHEMA "ebb" TO "ebb_role";`},
		"redshift": {`CREATE GROUP "ebb_role" WITH USER "ebb";`, `GRANT USAGE, CREATE ON SCHEMA "ebb" TO GROUP "ebb_role";`},
		"snowflake": {"GRANT USAGE ON WAREHOUSE EBB_WH TO ROLE EBB_ROLE;",
			"GRANT SELECT ON FUTURE TABLES IN SCHEMA ANALYTICS.PUBLIC TO ROLE EBB_ROLE;",
			"GRANT USAGE, CREATE TABLE ON SCHEMA ANALYTICS.EBB TO ROLE EBB_ROLE;"},
		"bigquery": {"--role=roles/bigquery.jobUser",
			"GRANT `roles/bigquery.dataViewer` ON SCHEMA `my-project.analytics` TO \"serviceAccount:ebb@my-project.iam.gserviceaccount.com\";"},
	} {
		sql, err := Setup(typ, Options{})
		require.NoError(t, err)
		for _, w := range want {
			require.Contains(t, sql, w, typ)
		}
	}
	_, err := Setup("oracle", Options{})
	require.EqualError(t, err, `no setup for source type "oracle" (known: bigquery, postgres, redshift, snowflake)`)
}

func TestQuoting(t *testing.T) {
	require.Equal(t, `GRANT SELECT ON TABLE "My ""S"""."t" TO "r";`, PgSelect(`My "S"`, "t", "r"))
	require.Equal(t, `DB."lower".T`, SfName("DB", "lower", "T"))
	sql, err := Setup("postgres", Options{Password: "it's"})
	require.NoError(t, err)
	require.Contains(t, sql, `PASSWORD 'it''s'`)
}
