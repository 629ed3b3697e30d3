package duckdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// The warehouse diff engine's side of the source (see source.Warehouse).

var _ source.Warehouse = (*Source)(nil)

// WarehouseSQL describes the model: keys as ScanHashes compares them, and
// the same row hash.
func (s *Source) WarehouseSQL(ctx context.Context, m source.Model) (source.WarehouseSQL, error) {
	cols, keys, err := s.keys(ctx, m)
	if err != nil {
		return source.WarehouseSQL{}, err
	}
	out := source.WarehouseSQL{From: query.Wrap(m.SQL), Hash: rowHash(cols)}
	for i, e := range compareKeys(keys) {
		if keys[i].Int {
			e = "CAST(" + e + " AS BIGINT)"
		}
		out.Keys = append(out.Keys, source.KeyExpr{Expr: e, Int: keys[i].Int})
	}
	return out, nil
}

// Table qualifies a table of the snapshot schema.
func (s *Source) Table(name string) string { return quote(s.schema) + "." + quote(name) }

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Dialect is DuckDB's: it takes every statement the engine writes.
func (s *Source) Dialect() source.WarehouseDialect { return source.WarehouseDialect{Quote: quote} }

// Param renders $n.
func (s *Source) Param(n int) string { return fmt.Sprintf("$%d", n) }

// ProbeSchema creates the schema and a table in it; a read-only database
// refuses both.
func (s *Source) ProbeSchema(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quote(s.schema)); err != nil {
		return fmt.Errorf("creating schema %q: %w", s.schema, err)
	}
	probe := s.Table(fmt.Sprintf("probe_%d", rand.Int64()))
	_, err := s.Exec(ctx, source.Stmt{SQL: "CREATE TABLE " + probe + " (i INTEGER)"}, source.Stmt{SQL: "DROP TABLE " + probe})
	if err != nil {
		return fmt.Errorf("creating a table in schema %q: %w", s.schema, err)
	}
	return nil
}

// Exec runs the statements in one transaction.
func (s *Source) Exec(ctx context.Context, stmts ...source.Stmt) ([]int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	counts := make([]int64, len(stmts))
	for i, st := range stmts {
		res, err := tx.ExecContext(ctx, st.SQL, st.Args...)
		if err != nil {
			return nil, err
		}
		if counts[i], err = res.RowsAffected(); err != nil {
			return nil, err
		}
	}
	return counts, tx.Commit()
}

// QueryInt runs a query returning one integer.
func (s *Source) QueryInt(ctx context.Context, sql string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, sql).Scan(&n)
	return n, err
}

// ScanKeys reads key parts and a payload.
func (s *Source) ScanKeys(ctx context.Context, sql string, nkeys int, fn source.HashFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	keys := make([]query.Key, nkeys)
	for i, t := range types[:nkeys] {
		keys[i] = query.Key{Name: t.Name(), Int: intTypes[t.DatabaseTypeName()]}
	}
	parts := make([]keyPart, nkeys)
	var payload keyPart // text or blob, kept as bytes
	dest := make([]any, 0, nkeys+1)
	for i := range parts {
		dest = append(dest, &parts[i])
	}
	dest = append(dest, &payload)
	var key record.Key
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		key = appendKey(key[:0], keys, parts)
		if err := fn(key, payload.s); err != nil {
			cancel()
			return err
		}
	}
	return rows.Err()
}

// Tables lists the snapshot schema's tables.
func (s *Source) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", s.schema)
	if err != nil {
		return nil, fmt.Errorf("listing tables of schema %q: %w", s.schema, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// ChangedModel is the model joined with a change table on the key
// columns: ScanRows over it reads only the changed rows, with its own
// keyset resumption and row decoding.
func (s *Source) ChangedModel(ctx context.Context, m source.Model, changeTable string) (source.Model, error) {
	_, keys, err := s.keys(ctx, m)
	if err != nil {
		return m, err
	}
	conds := make([]string, len(keys))
	for i, e := range compareKeys(keys) {
		conds[i] = fmt.Sprintf("c.k%d = %s", i+1, e)
	}
	sql := "SELECT m.* FROM " + query.Wrap(m.SQL) + " JOIN " + s.Table(changeTable) + " AS c ON " + strings.Join(conds, " AND ")
	return source.Model{SQL: sql, PrimaryKey: m.PrimaryKey}, nil
}
