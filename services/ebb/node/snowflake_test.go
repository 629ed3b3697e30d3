package node_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source/snowflake/sftest"
)

// TestPipelineFromSnowflake is the end-to-end flow from a Snowflake
// warehouse, read through the official driver from the local Snowflake
// server, in results of several chunks: composite key, unicode, NULLs,
// exact decimals; run 2 sends exactly the edits.
func TestPipelineFromSnowflake(t *testing.T) {
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
			Name: "customers", Source: "snow", Destination: "hook", Mode: config.ModeMirror,
			Model: config.Model{SQL: "SELECT * FROM customers", PrimaryKey: []string{"region", "id"}},
			Mapping: []config.Mapping{
				{From: "name", To: "traits.name"}, {From: "score", To: "traits.score"},
				{From: "note", To: "traits.note"}, {Const: "snowflake", To: "context.source"},
			},
		}},
	})
	r1 := e.runSync("customers")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)
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
	require.Equal(t, map[record.Op]int{record.OpUpsert: 102, record.OpDelete: 3}, opsOf(hook.Records(), r2.ID))
	require.Len(t, hook.State(), 10_000-3+2)
}
