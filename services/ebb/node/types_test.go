package node_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
)

// typesConfig syncs $S.items into the Postgres table $S.items_copy, in
// mirror mode (the mode that deletes), with the safety stop off: what
// protects the rows must be the type check, not an approval.
func typesConfig(p *pg, engine config.Engine, sql string) config.File {
	off := 1.0
	return config.File{
		Sources: []config.Source{{Name: "wh", Type: "postgres", Config: map[string]any{"dsn": postgresDSN(), "snapshot_schema": p.schema}}},
		Destinations: []config.Destination{{Name: "copy", Type: "postgres",
			Config: map[string]any{"dsn": postgresDSN(), "table": p.schema + ".items_copy", "batch_size": 20}}},
		Syncs: []config.Sync{{
			Name: "items", Source: "wh", Destination: "copy", Mode: config.ModeMirror, Engine: engine,
			Model:  config.Model{SQL: strings.ReplaceAll(sql, "$S", p.schema), PrimaryKey: []string{"id"}},
			Safety: config.Safety{MaxDeleteShare: &off},
		}},
	}
}

// seedItems creates $S.items (100 rows of a bigint key and an int) and
// the destination table $S.items_copy, whose n is jsonb, so the JSON type
// of what was sent shows.
func seedItems(p *pg) {
	p.exec(`CREATE TABLE $S.items (id bigint PRIMARY KEY, n int NOT NULL)`)
	p.exec(`INSERT INTO $S.items SELECT i, i * 10 FROM generate_series(1, 100) AS i`)
	p.exec(`CREATE TABLE $S.items_copy (id bigint PRIMARY KEY, n jsonb)`)
}

// Item 10 of issue 13, under both engines: a key column whose type changes
// (int to text, same digits) is refused before anything is sent, naming
// the column, both types and the remedy, and the destination keeps every
// row. Casting back in the model, as the error says, sends nothing.
func TestKeyTypeChangeIsRefused(t *testing.T) {
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) {
			p := newPG(t)
			seedItems(p)
			e := startEnv(t)
			e.apply(typesConfig(p, engine, `SELECT id, n FROM $S.items`))
			r1 := e.runSync("items")
			require.Equal(t, run.Succeeded, r1.State, r1.Error)
			require.Equal(t, string(engine), r1.Engine)
			require.Equal(t, 100, p.count(`SELECT count(*) FROM $S.items_copy`))

			// Refused, and again on the next run: the snapshot does not move.
			e.apply(typesConfig(p, engine, `SELECT id::text AS id, n FROM $S.items`))
			for range 2 {
				r := e.runSync("items")
				require.Equal(t, run.Failed, r.State)
				require.Equal(t, `primary key column "id" changed type from int8 to text since the last committed snapshot; `+
					`nothing was sent. Cast it back in the model (CAST(id AS int8)), or start over with ebb sync reset items `+
					`(the next run then sends every row as an add)`, r.Error)
				require.Zero(t, r.Planned.Total())
				require.Equal(t, 100, p.count(`SELECT count(*) FROM $S.items_copy`), "the destination keeps every row")
			}

			e.apply(typesConfig(p, engine, `SELECT CAST(id::text AS int8) AS id, n FROM $S.items`))
			r2 := e.runSync("items")
			require.Equal(t, run.Succeeded, r2.State, r2.Error)
			require.Zero(t, r2.Planned.Total())
		})
	}
}

// A snapshot without rows has no key to lose: its key's type change is
// reported, not refused.
func TestKeyTypeChangeOfAnEmptySnapshot(t *testing.T) {
	p := newPG(t)
	seedItems(p)
	p.exec(`DELETE FROM $S.items`)
	e := startEnv(t)
	e.apply(typesConfig(p, config.EngineLocal, `SELECT id, n FROM $S.items`))
	r1 := e.runSync("items")
	require.Equal(t, run.Succeeded, r1.State, r1.Error)

	p.exec(`INSERT INTO $S.items SELECT i, i FROM generate_series(1, 3) AS i`)
	e.apply(typesConfig(p, config.EngineLocal, `SELECT id::text AS id, n FROM $S.items`))
	r2 := e.runSync("items")
	require.Equal(t, run.Succeeded, r2.State, r2.Error)
	require.Equal(t, run.Planned{Adds: 3}, r2.Planned)
	require.Equal(t, []string{`column "id" changed type from int8 to text: every row is sent again`}, r2.TypeChanges)
}

// Item 10 of issue 13, under both engines: a non-key column whose type
// changes with the same text (int to text) hashes the same, yet its rows
// are sent again, as the destination would otherwise keep values of the
// old type; the run says why.
func TestColumnTypeChangeResendsRows(t *testing.T) {
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) {
			p := newPG(t)
			seedItems(p)
			e := startEnv(t)
			e.apply(typesConfig(p, engine, `SELECT id, n FROM $S.items`))
			r1 := e.runSync("items")
			require.Equal(t, run.Succeeded, r1.State, r1.Error)
			require.Empty(t, r1.TypeChanges)
			require.Equal(t, map[string]int{"number": 100}, jsonTypes(p))

			e.apply(typesConfig(p, engine, `SELECT id, n::text AS n FROM $S.items`))
			r2 := e.runSync("items")
			require.Equal(t, run.Succeeded, r2.State, r2.Error)
			require.Equal(t, run.Planned{Changes: 100}, r2.Planned)
			require.EqualValues(t, 100, r2.Changes.Delivered)
			require.Equal(t, []string{`column "n" changed type from int4 to text: every row is sent again`}, r2.TypeChanges)
			require.Equal(t, map[string]int{"string": 100}, jsonTypes(p))

			// The snapshot now has the new types: nothing more to send.
			r3 := e.runSync("items")
			require.Equal(t, run.Succeeded, r3.State, r3.Error)
			require.Zero(t, r3.Planned.Total())
			require.Empty(t, r3.TypeChanges)
		})
	}
}

// The remedy the key type error names, under both engines: `ebb sync reset`
// drops the committed snapshot (its warehouse table too), and the next run
// plans every row as an add, which the destination takes as upserts of the
// rows it holds.
func TestResetAfterKeyTypeChange(t *testing.T) {
	for _, engine := range []config.Engine{config.EngineLocal, config.EngineWarehouse} {
		t.Run(string(engine), func(t *testing.T) {
			p := newPG(t)
			seedItems(p)
			e := startEnvWith(t, t.TempDir(), "127.0.0.1:0")
			e.apply(typesConfig(p, engine, `SELECT id, n FROM $S.items`))
			r1 := e.runSync("items")
			require.Equal(t, run.Succeeded, r1.State, r1.Error)
			if engine == config.EngineWarehouse {
				onlyCommitted(t, p, r1)
			}

			e.apply(typesConfig(p, engine, `SELECT id::text AS id, n FROM $S.items`))
			r2 := e.runSync("items")
			require.Equal(t, run.Failed, r2.State)
			require.Contains(t, r2.Error, "ebb sync reset items")

			out, code := ebbCLI(t, e, "sync", "reset", "items", "--yes")
			require.Equal(t, 0, code, out)
			require.Contains(t, out, "reset sync items: dropped the snapshot of run "+r1.ID+" ("+string(engine)+" engine, 100 rows")
			require.Empty(t, engineTables(p), "the snapshot table is dropped with the snapshot")

			r3 := e.runSync("items")
			require.Equal(t, run.Succeeded, r3.State, r3.Error)
			require.Equal(t, run.Planned{Adds: 100}, r3.Planned, "every row is an add")
			require.EqualValues(t, 100, r3.Adds.Delivered)
			require.Zero(t, r3.PreviousRows)
			require.Equal(t, 100, p.count(`SELECT count(*) FROM $S.items_copy`))

			r4 := e.runSync("items")
			require.Equal(t, run.Succeeded, r4.State, r4.Error)
			require.Zero(t, r4.Planned.Total(), "the new snapshot has the new key type")
		})
	}
}

// jsonTypes counts the rows of $S.items_copy by the JSON type of n.
func jsonTypes(p *pg) map[string]int {
	p.t.Helper()
	rows, err := p.pool.Query(context.Background(), strings.ReplaceAll(`SELECT jsonb_typeof(n), count(*) FROM $S.items_copy GROUP BY 1`, "$S", p.schema))
	require.NoError(p.t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var typ string
		var n int
		require.NoError(p.t, rows.Scan(&typ, &n))
		out[typ] = n
	}
	require.NoError(p.t, rows.Err())
	return out
}
