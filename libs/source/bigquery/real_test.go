package bigquery_test

import (
	"context"
	"encoding/base64"
	"fmt"
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
)

// TestRealBigQuery runs the acceptance suite against BigQuery itself, each
// test in a dataset of its own, deleted afterwards. It needs
// EBB_TEST_BIGQUERY_PROJECT and credentials: EBB_TEST_BIGQUERY_CREDENTIALS_JSON
// (a service account key's JSON text) or application default credentials.
// EBB_TEST_BIGQUERY_LOCATION picks where the datasets live (default US).
func TestRealBigQuery(t *testing.T) {
	project := os.Getenv("EBB_TEST_BIGQUERY_PROJECT")
	if project == "" {
		t.Skip("EBB_TEST_BIGQUERY_PROJECT is not set: the suite ran against the local server only " +
			"(set it, with EBB_TEST_BIGQUERY_CREDENTIALS_JSON or application default credentials, to run it against BigQuery)")
	}
	sourcetest.Run(t, func(t *testing.T) sourcetest.Env { return realEnv(t, project) })
}

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
