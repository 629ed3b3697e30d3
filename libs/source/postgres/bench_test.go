package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/postgres/pgtest"
	"github.com/ebb-etl/ebb/libs/source/sourcetest"
)

const benchRows = 200_000

// benchTable creates a three-column table of benchRows rows and returns a
// model over it, a source and a bare pgx connection to the same database.
func benchTable(b *testing.B) (source.Model, source.Source, *pgx.Conn) {
	e := pgtest.Env(b)
	table := e.Table("bench")
	sourcetest.Exec(b, e,
		"CREATE TABLE "+table+" (id bigint PRIMARY KEY, name text, score int)",
		"INSERT INTO "+table+" SELECT g, 'name ' || g, g % 1000 FROM generate_series(1, 200000) AS s(g)",
		"ANALYZE "+table)
	conn, err := pgx.Connect(context.Background(), pgtest.DSN())
	require.NoError(b, err)
	b.Cleanup(func() { conn.Close(context.Background()) })
	return source.Model{SQL: "SELECT * FROM " + table, PrimaryKey: []string{"id"}}, sourcetest.Open(b, e), conn
}

func reportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkScanHashes compares ScanHashes with bare pgx reads of the same
// query, the floor any implementation can reach.
func BenchmarkScanHashes(b *testing.B) {
	m, src, conn := benchTable(b)
	ctx := context.Background()
	bare := `SELECT m."id", decode(md5(ROW(m.*)::text), 'hex') FROM (` + m.SQL + `) AS m ORDER BY m."id" NULLS FIRST`

	b.Run("source", func(b *testing.B) {
		for b.Loop() {
			n := 0
			require.NoError(b, src.ScanHashes(ctx, m, func(record.Key, []byte) error { n++; return nil }))
			require.Equal(b, benchRows, n)
		}
		reportRows(b, benchRows)
	})
	b.Run("bare_pgx_raw", func(b *testing.B) {
		for b.Loop() {
			rows, err := conn.Query(ctx, bare)
			require.NoError(b, err)
			n := 0
			for rows.Next() {
				_ = rows.RawValues()
				n++
			}
			require.NoError(b, rows.Err())
			require.Equal(b, benchRows, n)
		}
		reportRows(b, benchRows)
	})
	b.Run("bare_pgx_scan", func(b *testing.B) {
		for b.Loop() {
			rows, err := conn.Query(ctx, bare)
			require.NoError(b, err)
			var id int64
			var hash []byte
			n := 0
			for rows.Next() {
				require.NoError(b, rows.Scan(&id, &hash))
				n++
			}
			require.NoError(b, rows.Err())
			require.Equal(b, benchRows, n)
		}
		reportRows(b, benchRows)
	})
}

// BenchmarkScanRows measures the extractor's read of whole rows against a
// bare pgx read of the same columns into Go values.
func BenchmarkScanRows(b *testing.B) {
	m, src, conn := benchTable(b)
	ctx := context.Background()

	b.Run("source", func(b *testing.B) {
		for b.Loop() {
			n := 0
			require.NoError(b, src.ScanRows(ctx, m, nil, func(record.Key, map[string]any) error { n++; return nil }))
			require.Equal(b, benchRows, n)
		}
		reportRows(b, benchRows)
	})
	b.Run("bare_pgx_values", func(b *testing.B) {
		for b.Loop() {
			rows, err := conn.Query(ctx, m.SQL+" ORDER BY id")
			require.NoError(b, err)
			n := 0
			for rows.Next() {
				_, err := rows.Values()
				require.NoError(b, err)
				n++
			}
			require.NoError(b, rows.Err())
			require.Equal(b, benchRows, n)
		}
		reportRows(b, benchRows)
	})
}
