package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// The warehouse diff engine's side of the source (see source.Warehouse).

var _ source.Warehouse = (*Source)(nil)

// WarehouseSQL describes the model: keys as compared by ScanHashes, and
// the same md5 of the row's text form (as 32 hex digits of text in the
// portable dialect, see Dialect).
func (s *Source) WarehouseSQL(ctx context.Context, m source.Model) (source.WarehouseSQL, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return source.WarehouseSQL{}, fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	fields, err := describe(ctx, conn.Conn(), m.SQL)
	if err != nil {
		return source.WarehouseSQL{}, err
	}
	keys, err := keysOf(fields, m.PrimaryKey)
	if err != nil {
		return source.WarehouseSQL{}, err
	}
	out := source.WarehouseSQL{From: query.Wrap(m.SQL), Hash: s.d.rowHash(fields)}
	for i, e := range s.d.keyExprs(keys, fields) {
		if keys[i].Int {
			e = "CAST(" + e + " AS BIGINT)" // one type whatever the column's width
		}
		out.Keys = append(out.Keys, source.KeyExpr{Expr: e, Int: keys[i].Int})
	}
	return out, nil
}

// Table qualifies a table of the snapshot schema.
func (s *Source) Table(name string) string {
	return pgx.Identifier{s.schema, name}.Sanitize()
}

// Dialect is Postgres's, or Redshift's in the portable dialect: DELETE
// without an alias, and hashes kept as hex text.
func (s *Source) Dialect() source.WarehouseDialect {
	quote := func(name string) string { return pgx.Identifier{name}.Sanitize() }
	return source.WarehouseDialect{DeleteUsing: s.d.Portable, HashHex: s.d.Portable, Quote: quote}
}

// Param renders $n.
func (s *Source) Param(n int) string { return fmt.Sprintf("$%d", n) }

// ProbeSchema creates the schema only when it is missing: CREATE SCHEMA IF
// NOT EXISTS needs CREATE on the database even when the schema exists, and
// a least-privilege role has CREATE on its schema only.
func (s *Source) ProbeSchema(ctx context.Context) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.schema).Scan(&exists); err != nil {
		return fmt.Errorf("looking up schema %q: %w", s.schema, err)
	}
	if !exists {
		if _, err := s.pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
			return fmt.Errorf("creating schema %q: %w", s.schema, err)
		}
	}
	probe := s.Table(fmt.Sprintf("probe_%d", rand.Int64()))
	_, err := s.Exec(ctx, source.Stmt{SQL: "CREATE TABLE " + probe + " (i int)"}, source.Stmt{SQL: "DROP TABLE " + probe})
	if err != nil {
		return fmt.Errorf("creating a table in schema %q: %w", s.schema, err)
	}
	return nil
}

// Exec runs the statements in one transaction (Redshift, like Postgres,
// takes DDL in transactions), with text parameters in the portable dialect.
func (s *Source) Exec(ctx context.Context, stmts ...source.Stmt) ([]int64, error) {
	counts := make([]int64, len(stmts))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i, st := range stmts {
			args := st.Args
			if s.d.Portable {
				args = append([]any{pgx.QueryExecModeExec}, args...)
			}
			tag, err := tx.Exec(ctx, st.SQL, args...)
			if err != nil {
				return err
			}
			counts[i] = tag.RowsAffected()
		}
		return nil
	})
	return counts, err
}

// QueryInt runs a query returning one integer.
func (s *Source) QueryInt(ctx context.Context, sql string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, sql, pgx.QueryExecModeExec).Scan(&n)
	return n, err
}

// ScanKeys reads key parts and a payload, in binary format (text in the
// portable dialect).
func (s *Source) ScanKeys(ctx context.Context, sql string, nkeys int, fn source.HashFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	formats := make(pgx.QueryResultFormats, nkeys+1)
	for i := range formats {
		formats[i] = pgx.BinaryFormatCode
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	rows, err := s.query(ctx, conn.Conn(), sql, formats, nil)
	if err != nil {
		return err
	}
	defer rows.Close()
	keys := make([]query.Key, nkeys)
	for i, f := range rows.FieldDescriptions()[:nkeys] {
		keys[i] = query.Key{Name: f.Name, Int: f.DataTypeOID == pgtype.Int8OID || f.DataTypeOID == pgtype.Int4OID || f.DataTypeOID == pgtype.Int2OID}
	}
	var key record.Key
	for rows.Next() {
		raw := rows.RawValues()
		if key, err = s.appendKey(key[:0], keys, raw); err != nil {
			stop(cancel, rows)
			return err
		}
		if err := fn(key, raw[nkeys]); err != nil {
			stop(cancel, rows)
			return err
		}
	}
	return rows.Err()
}

// Tables lists the snapshot schema's tables (Redshift has pg_tables too).
func (s *Source) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = $1", pgx.QueryExecModeExec, s.schema)
	if err != nil {
		return nil, fmt.Errorf("listing tables of schema %q: %w", s.schema, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing tables of schema %q: %w", s.schema, err)
	}
	return names, nil
}

// ChangedModel is the model joined with a change table on the key
// columns: ScanRows over it reads only the changed rows, with its own
// keyset resumption and row decoding.
func (s *Source) ChangedModel(ctx context.Context, m source.Model, changeTable string) (source.Model, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return m, fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	fields, err := describe(ctx, conn.Conn(), m.SQL)
	if err != nil {
		return m, err
	}
	keys, err := keysOf(fields, m.PrimaryKey)
	if err != nil {
		return m, err
	}
	conds := make([]string, len(keys))
	for i, e := range s.d.keyExprs(keys, fields) {
		conds[i] = fmt.Sprintf("c.k%d = %s", i+1, e)
	}
	sql := "SELECT m.* FROM " + query.Wrap(m.SQL) + " JOIN " + s.Table(changeTable) + " AS c ON " + strings.Join(conds, " AND ")
	return source.Model{SQL: sql, PrimaryKey: m.PrimaryKey}, nil
}
