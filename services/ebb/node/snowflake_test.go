package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
	"github.com/ebb-etl/ebb/libs/warehouse"
)

// TestPipelineFromSnowflake is the end-to-end flow from a Snowflake
// warehouse, read through the official driver from the local Snowflake
// server, in results of several chunks: composite key, unicode, NULLs,
// exact decimals; run 2 sends exactly the edits. Both engines deliver the
// same, and the warehouse engine leaves only the committed snapshot table.
func TestPipelineFromSnowflake(t *testing.T) {
	delivered := map[config.Engine]map[string]map[string]any{}
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) { delivered[engine] = testSnowflakePipeline(t, engine) })
	}
	require.Equal(t, delivered[config.EngineLocal], delivered[config.EngineWarehouse], "both engines deliver the same")
}

// testSnowflakePipeline runs the scenario with engine and returns the
// destination's state after run 2.
func testSnowflakePipeline(t *testing.T, engine config.Engine) map[string]map[string]any {
	ctx := context.Background()
	wh := sftest.New(t, sftest.WithChunkRows(2000))
	exec := func(sql string) {
		t.Helper()
		_, err := wh.DB.ExecContext(ctx, sql)
		require.NoError(t, err, sql)
	}
	exec(`CREATE TABLE customers (region VARCHAR, id INTEGER, name VARCHAR, score DECIMAL(12,4), note VARCHAR,
		PRIMARY KEY (region, id))`)
	exec(`INSERT INTO customers SELECT ['eu','us','apac','ünïcødé'][1 + i % 4], i, 'Ñame ' || i || ' 🚀',
		CAST(i * 1.2345 AS DECIMAL(12,4)), CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END
		FROM range(1, 10001) t(i)`)

	hook, url := sink(t)
	e := startEnv(t)
	e.apply(config.File{
		Sources:      []config.Source{{Name: "snow", Type: "snowflake", Config: wh.Config()}},
		Destinations: []config.Destination{{Name: "hook", Type: "webhook", Config: map[string]any{"url": url, "batch_size": 250}}},
		Syncs: []config.Sync{{
			Name: "customers", Source: "snow", Destination: "hook", Mode: config.ModeMirror, Engine: engine,
			Model: config.Model{SQL: "SELECT * FROM customers", PrimaryKey: []string{"region", "id"}},
			Mapping: []config.Mapping{
				{From: "name", To: "traits.name"}, {From: "score", To: "traits.score"},
				{From: "note", To: "traits.note"}, {Const: "snowflake", To: "context.source"},
			},
		}},
	})
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
	require.Equal(t, string(engine), r1.Engine)
	require.Len(t, hook.State(), 10_000)
	got := hook.State()[`{"id":4,"region":"eu"}`]
	require.Equal(t, map[string]any{"name": "Ñame 4 🚀", "score": "4.9380", "note": "note 4"}, stringify(got["traits"]))
	require.Equal(t, map[string]any{"source": "snowflake"}, got["context"])
	require.Positive(t, wh.ChunkGets(), "results larger than a response must come in chunks")

	exec(`UPDATE customers SET note = 'changed' WHERE id % 100 = 7`)
	exec(`INSERT INTO customers VALUES ('eu', 20001, 'new', 0, NULL), ('eu', 20002, 'new', 0, NULL)`)
	exec(`DELETE FROM customers WHERE id IN (1, 2, 3)`)
	r2 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Equal(t, string(engine), r2.Engine)
	require.Equal(t, map[record.Op]int{record.OpUpsert: 102, record.OpDelete: 3}, opsOf(hook.Records(), r2.ID))
	require.Len(t, hook.State(), 10_000-3+2)
	if engine == config.EngineWarehouse {
		onlySnowflakeSnapshot(t, wh, r2)
	} else {
		require.Empty(t, snowflakeEngineTables(t, wh), "the local engine writes no tables")
	}
	return hook.State()
}

// snowflakeEngineTables lists the warehouse engine's tables in the server's
// default snapshot schema, EBB.EBB.
func snowflakeEngineTables(t *testing.T, wh *sftest.Server) []string {
	t.Helper()
	rows, err := wh.DB.Query(`SELECT table_name FROM information_schema.tables
		WHERE table_catalog = 'EBB' AND table_schema = 'EBB' ORDER BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		if _, id := warehouse.RunOf(name); id != "" {
			out = append(out, name)
		}
	}
	require.NoError(t, rows.Err())
	return out
}

// onlySnowflakeSnapshot waits until the janitor (it runs after the commit)
// has left one engine table: the snapshot table of run r.
func onlySnowflakeSnapshot(t *testing.T, wh *sftest.Server, r *run.Run) {
	t.Helper()
	require.Eventually(t, func() bool {
		tables := snowflakeEngineTables(t, wh)
		if len(tables) != 1 || !strings.HasPrefix(tables[0], "snap_") {
			return false
		}
		_, id := warehouse.RunOf(tables[0])
		return id == r.ID
	}, 30*time.Second, 20*time.Millisecond, "tables left: %v", snowflakeEngineTables(t, wh))
}
