package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery/bqtest"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// TestPipelineFromBigQuery is the end-to-end flow from BigQuery (the local
// server, paging at 1,000 rows) through the official client, under each
// diff engine: composite key, unicode, NULLs, exact decimals; run 2 sends
// exactly the edits, and both engines deliver the same rows.
func TestPipelineFromBigQuery(t *testing.T) {
	states := map[config.Engine]map[string]map[string]any{}
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) { states[engine] = bigQueryPipeline(t, engine) })
	}
	if !t.Failed() {
		require.Equal(t, states[config.EngineLocal], states[config.EngineWarehouse], "both engines deliver the same rows")
	}
}

// bigQueryPipeline runs the scenario with engine and returns what the
// destination holds at the end.
func bigQueryPipeline(t *testing.T, engine config.Engine) map[string]map[string]any {
	ctx := context.Background()
	srv := bqtest.New(t, "ebb-e2e", 1000)
	exec := func(sql string) {
		t.Helper()
		require.NoError(t, srv.Exec(ctx, sql), sql)
	}
	exec(`CREATE SCHEMA crm`)
	exec(`CREATE TABLE crm.customers (region VARCHAR, id INTEGER, name VARCHAR, score DECIMAL(12,4), note VARCHAR,
		seen TIMESTAMPTZ, tags VARCHAR[])`)
	exec(`INSERT INTO crm.customers SELECT ['eu','us','apac','ünïcødé'][1 + i % 4], i, 'Ñame ' || i || ' 🚀',
		CAST(i * 1.2345 AS DECIMAL(12,4)), CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END,
		TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1 SECOND, ['t' || i]
		FROM range(1, 10001) t(i)`)

	hook, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources:      []config.Source{{Name: "bq", Type: "bigquery", Config: srv.Config("crm")}},
		Destinations: []config.Destination{{Name: "hook", Type: "webhook", Config: map[string]any{"url": url, "batch_size": 250}}},
		Syncs: []config.Sync{{
			Name: "customers", Source: "bq", Destination: "hook", Mode: config.ModeMirror, Engine: engine,
			Model: config.Model{SQL: "SELECT * FROM customers", PrimaryKey: []string{"region", "id"}},
			Mapping: []config.Mapping{
				{From: "name", To: "traits.name"}, {From: "score", To: "traits.score"},
				{From: "note", To: "traits.note"}, {From: "seen", To: "traits.seen"},
				{From: "tags", To: "traits.tags"}, {Const: "bigquery", To: "context.source"},
			},
		}},
	})
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	require.Equal(t, string(engine), r1.Engine)
	require.Len(t, hook.State(), 10_000)
	got := hook.State()[`{"id":4,"region":"eu"}`]
	require.Equal(t, map[string]any{
		"name": "Ñame 4 🚀", "score": "4.938", "note": "note 4", "seen": "2024-01-01T00:00:04Z", "tags": []any{"t4"},
	}, stringify(got["traits"]))
	require.Equal(t, map[string]any{"source": "bigquery"}, got["context"])
	require.Nil(t, stringify(hook.State()[`{"id":3,"region":"us"}`]["traits"])["note"])

	exec(`UPDATE crm.customers SET note = 'changed' WHERE id % 100 = 7`)
	exec(`INSERT INTO crm.customers VALUES ('eu', 20001, 'new', 0, NULL, NULL, NULL), ('eu', 20002, 'new', 0, NULL, NULL, NULL)`)
	exec(`DELETE FROM crm.customers WHERE id IN (1, 2, 3)`)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Equal(t, string(engine), r2.Engine)
	require.Equal(t, map[record.Op]int{record.OpUpsert: 102, record.OpDelete: 3}, opsOf(hook.Records(), r2.ID))
	require.Len(t, hook.State(), 10_000-3+2)
	require.NotContains(t, hook.State(), capture.KeyString(map[string]any{"region": "us", "id": 1}))
	require.Greater(t, srv.Pages.Load(), int64(9), "results were read in pages")

	if engine == config.EngineWarehouse {
		onlyCommittedIn(t, srv, r2)
	} else {
		require.Empty(t, snapshotTables(t, srv), "the local engine writes no table")
	}
	return hook.State()
}

// snapshotTables lists every table of the source's snapshot dataset (the
// default, ebb), read from the server's DuckDB directly.
func snapshotTables(t *testing.T, srv *bqtest.Server) []string {
	t.Helper()
	tables, err := srv.Tables(context.Background(), source.DefaultSnapshotSchema)
	require.NoError(t, err)
	return tables
}

// onlyCommittedIn waits until the janitor (it runs after the commit) has
// left one table in the snapshot dataset: the snapshot table of run r; no
// change, previous, keys or probe table.
func onlyCommittedIn(t *testing.T, srv *bqtest.Server, r *run.Run) {
	t.Helper()
	require.Eventually(t, func() bool {
		tables := snapshotTables(t, srv)
		if len(tables) != 1 || !strings.HasPrefix(tables[0], "snap_") {
			return false
		}
		_, id := warehouse.RunOf(tables[0])
		return id == r.ID
	}, 30*time.Second, 20*time.Millisecond, "tables left: %v", snapshotTables(t, srv))
}
