package bigquery_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	bq "cloud.google.com/go/bigquery"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
	"github.com/ebb-etl/ebb/libs/warehouse/warehousetest"
)

// TestRealBigQuery runs the acceptance suite against BigQuery itself, each
// test in a dataset of its own, deleted afterwards. It needs
// EBB_TEST_BIGQUERY_PROJECT and credentials: EBB_TEST_BIGQUERY_CREDENTIALS_JSON
// (a service account key's JSON text) or application default credentials.
// EBB_TEST_BIGQUERY_LOCATION picks where the datasets live (default US).
func TestRealBigQuery(t *testing.T) {
	project := realProject(t, "the suite")
	sourcetest.Run(t, func(t *testing.T) sourcetest.Env { return realEnv(t, project) })
}

// realProject is EBB_TEST_BIGQUERY_PROJECT, or else it skips the test,
// saying that what (a test's subject) ran against the local server only.
func realProject(t *testing.T, what string) string {
	t.Helper()
	project := os.Getenv("EBB_TEST_BIGQUERY_PROJECT")
	if project == "" {
		t.Skip("EBB_TEST_BIGQUERY_PROJECT is not set: " + what + " ran against the local server only " +
			"(set it, with EBB_TEST_BIGQUERY_CREDENTIALS_JSON or application default credentials, to run it against BigQuery)")
	}
	return project
}

// TestRealBigQueryWarehouseEngine runs the warehouse diff engine on
// BigQuery against the local engine (see warehousetest.Agree), with the
// engine's tables in the test's dataset. The model table is named
// `project.dataset.items`, backquoted (project ids may hold hyphens);
// statements run one by one, as jobs (BigQuery has no DDL in
// transactions).
func TestRealBigQueryWarehouseEngine(t *testing.T) {
	project := realProject(t, "the warehouse engine")
	ctx := context.Background()
	env := realEnv(t, project)
	dataset := strings.TrimSuffix(env.Prefix, ".")
	cfg := maps.Clone(env.Config)
	cfg["snapshot_schema"] = dataset // deleted with the test's dataset
	exec := func(sql string) {
		t.Helper()
		require.NoError(t, env.Exec(ctx, sql), sql)
	}
	table := "`" + project + "." + dataset + ".items`"
	exec("CREATE TABLE " + table + " (org INT64, name STRING, note STRING, amount NUMERIC)")
	src, err := bigquery.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, src.Close()) })
	warehousetest.Agree(t, src, exec, warehousetest.Model{
		Table: table, Org: "org", Name: "name", Note: "note", Amount: "amount",
		Text: googleText, Decimal: googleNumeric,
	})
}

// googleText is a GoogleSQL string literal: a quote is escaped with a
// backslash (a doubled quote is not an escape in GoogleSQL), and so is a
// backslash.
func googleText(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// googleNumeric is a NUMERIC literal: a bare 1.5 would be a FLOAT64.
func googleNumeric(s string) string { return "NUMERIC '" + s + "'" }

func realEnv(t *testing.T, project string) sourcetest.Env {
	ctx := context.Background()
	creds := os.Getenv("EBB_TEST_BIGQUERY_CREDENTIALS_JSON")
	location := os.Getenv("EBB_TEST_BIGQUERY_LOCATION")
	if location == "" {
		location = "US"
	}
	var opts []option.ClientOption
	if creds != "" {
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(creds)))
	}
	client, err := bq.NewClient(ctx, project, opts...)
	require.NoError(t, err)
	client.Location = location
	dataset := fmt.Sprintf("ebb_test_%d", time.Now().UnixNano())
	ds := client.Dataset(dataset)
	require.NoError(t, ds.Create(ctx, &bq.DatasetMetadata{Location: location,
		DefaultTableExpiration: time.Hour}))
	t.Cleanup(func() {
		_ = ds.DeleteWithContents(context.Background())
		_ = client.Close()
	})
	cfg := map[string]any{"project": project, "dataset": dataset, "location": location}
	if creds != "" {
		cfg["credentials_json"] = creds
	}
	return sourcetest.Env{
		Type:   "bigquery",
		Config: cfg,
		Open: func(ctx context.Context) (source.Source, error) {
			return bigquery.Open(ctx, cfg)
		},
		Exec: func(ctx context.Context, sql string) error {
			q := client.Query(googleSQL(sql))
			q.DefaultDatasetID = dataset
			job, err := q.Run(ctx)
			if err != nil {
				return err
			}
			status, err := job.Wait(ctx)
			if err != nil {
				return err
			}
			return status.Err()
		},
		Prefix: dataset + ".",
		Blob: func(b []byte) string {
			return "FROM_BASE64('" + base64.StdEncoding.EncodeToString(b) + "')"
		},
		ScalelessDecimals: true,
	}
}

// The suite's setup statements are written in the SQL Postgres and DuckDB
// share; googleSQL rewrites the few parts GoogleSQL spells differently.
var (
	typeNames = strings.NewReplacer("timestamptz", "TIMESTAMP", "timestamp", "DATETIME", "bytea", "BYTES",
		"float8", "FLOAT64", "text", "STRING")
	typeWord    = regexp.MustCompile(`\b(timestamptz|timestamp|bytea|float8|text)\b`)
	series      = regexp.MustCompile(`generate_series\((\d+), (\d+)\) AS s\(g\)`)
	updateWhere = regexp.MustCompile(`(?is)^UPDATE\s`)
)

func googleSQL(sql string) string {
	if strings.HasPrefix(sql, "CREATE TABLE") || strings.HasPrefix(sql, "ALTER TABLE") || strings.Contains(sql, " AS text)") {
		sql = typeWord.ReplaceAllStringFunc(sql, typeNames.Replace)
	}
	sql = series.ReplaceAllString(sql, "UNNEST(GENERATE_ARRAY($1, $2)) AS g")
	// GoogleSQL requires a WHERE clause on UPDATE.
	if updateWhere.MatchString(sql) && !strings.Contains(strings.ToUpper(sql), " WHERE ") {
		sql += " WHERE true"
	}
	return sql
}
