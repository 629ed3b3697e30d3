// Package postgres reads models from PostgreSQL (and wire-compatible
// warehouses) with a pgx connection pool.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// Source reads models from one Postgres database.
type Source struct {
	pool *pgxpool.Pool
}

var _ source.Source = (*Source)(nil)

// Open connects to the database named by cfg["dsn"], a libpq connection
// string or URL.
func Open(ctx context.Context, cfg map[string]any) (*Source, error) {
	dsn, ok := cfg["dsn"].(string)
	if !ok || dsn == "" {
		return nil, errors.New(`postgres source: config field "dsn" is required and must be a string`)
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password from parse errors.
		return nil, fmt.Errorf("postgres source: parsing dsn: %w", err)
	}
	// Key parts and row hashes are computed from text forms, which must not
	// change with the server's, the role's or the database's defaults.
	rp := pc.ConnConfig.RuntimeParams
	rp["timezone"] = "UTC"
	rp["datestyle"] = "ISO, MDY"
	rp["intervalstyle"] = "postgres"
	rp["extra_float_digits"] = "1"
	if rp["application_name"] == "" {
		rp["application_name"] = "ebb"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres source: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres source: connecting: %w", err)
	}
	return &Source{pool: pool}, nil
}

// Close closes the pool.
func (s *Source) Close() error {
	s.pool.Close()
	return nil
}

// Columns describes the model without running it.
func (s *Source) Columns(ctx context.Context, sql string) ([]source.Column, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	fields, err := describe(ctx, conn.Conn(), sql)
	if err != nil {
		return nil, err
	}
	cols := make([]source.Column, len(fields))
	for i, f := range fields {
		name, err := typeName(ctx, conn.Conn(), f.DataTypeOID)
		if err != nil {
			return nil, err
		}
		cols[i] = source.Column{Name: f.Name, Type: name}
	}
	return cols, nil
}

// ScanHashes streams keys and md5 hashes of the rows' text form, computed by
// the server, in key order.
func (s *Source) ScanHashes(ctx context.Context, m source.Model, fn source.HashFunc) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	fields, err := describe(ctx, conn.Conn(), m.SQL)
	if err != nil {
		return err
	}
	keys, err := keysOf(fields, m.PrimaryKey)
	if err != nil {
		return err
	}
	// ROW(m.*)::text quotes empty strings and leaves NULLs empty, so NULL and
	// '' hash differently, and quotes values containing delimiters.
	sql := "SELECT " + strings.Join(keyExprs(keys), ", ") +
		", decode(md5(ROW(m.*)::text), 'hex') FROM " + query.Wrap(m.SQL) +
		" ORDER BY " + orderBy(keys)
	formats := make(pgx.QueryResultFormats, len(keys)+1)
	for i := range formats {
		formats[i] = pgx.BinaryFormatCode
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeDescribeExec, formats)
	if err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	var key record.Key
	n := len(keys)
	for rows.Next() {
		raw := rows.RawValues()
		if key, err = appendKey(key[:0], keys, raw); err != nil {
			return err
		}
		if err := fn(key, raw[n]); err != nil {
			stop(cancel, rows)
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	return nil
}

// ScanRows streams whole rows after the given key, in key order.
func (s *Source) ScanRows(ctx context.Context, m source.Model, after record.Key, fn source.RowFunc) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	defer conn.Release()
	fields, err := describe(ctx, conn.Conn(), m.SQL)
	if err != nil {
		return err
	}
	keys, err := keysOf(fields, m.PrimaryKey)
	if err != nil {
		return err
	}
	cols, err := columnsOf(conn.Conn().TypeMap(), fields)
	if err != nil {
		return err
	}

	sql := "SELECT m.*, " + strings.Join(keyExprs(keys), ", ") + " FROM " + query.Wrap(m.SQL)
	var args []any
	if after != nil {
		parts, err := query.Parts(after, keys)
		if err != nil {
			return err
		}
		var cond string
		cond, args = query.After(keyExprs(keys), parts, func(n, i int) string {
			if keys[i].Int {
				return fmt.Sprintf("$%d::int8", n)
			}
			return fmt.Sprintf("$%d::text", n)
		}, true)
		sql += " WHERE " + cond
	}
	sql += " ORDER BY " + orderBy(keys)

	formats := make(pgx.QueryResultFormats, len(cols)+len(keys))
	for i := range formats {
		formats[i] = pgx.BinaryFormatCode
		if i < len(cols) {
			formats[i] = cols[i].format
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryExecModeDescribeExec, formats}, args...)...)
	if err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	var key record.Key
	for rows.Next() {
		raw := rows.RawValues()
		row, err := decodeRow(cols, raw)
		if err != nil {
			stop(cancel, rows)
			return err
		}
		if key, err = appendKey(key[:0], keys, raw[len(cols):]); err != nil {
			stop(cancel, rows)
			return err
		}
		if err := fn(key, row); err != nil {
			stop(cancel, rows)
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	return nil
}

// Scans run in describe-exec mode, on the unnamed statement: a statement
// cached on the connection would fail once ("cached plan must not change
// result type") after the model's tables change shape.

// stop abandons a query midway: cancelling makes the server stop sending
// rows, where closing alone would read the rest of the result.
func stop(cancel context.CancelFunc, rows pgx.Rows) {
	cancel()
	rows.Close()
}

// describe returns the model's result columns. It prepares the unnamed
// statement, so the model is planned but not run.
func describe(ctx context.Context, conn *pgx.Conn, sql string) ([]pgconn.FieldDescription, error) {
	sd, err := conn.PgConn().Prepare(ctx, "", "SELECT * FROM "+query.Wrap(sql)+" LIMIT 0", nil)
	if err != nil {
		return nil, fmt.Errorf("running model: %w", err)
	}
	return sd.Fields, nil
}

// typeName names a type from the connection's type map, or from the server's
// catalog for types pgx does not know (enums, domains, extensions).
func typeName(ctx context.Context, conn *pgx.Conn, oid uint32) (string, error) {
	if t, ok := conn.TypeMap().TypeForOID(oid); ok {
		return t.Name, nil
	}
	var name string
	if err := conn.QueryRow(ctx, "SELECT format_type($1, NULL)", oid).Scan(&name); err != nil {
		return "", fmt.Errorf("naming type %d: %w", oid, err)
	}
	return name, nil
}

func keysOf(fields []pgconn.FieldDescription, primaryKey []string) ([]query.Key, error) {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return query.Keys(names, primaryKey, func(i int) bool {
		switch fields[i].DataTypeOID {
		case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
			return true
		}
		return false
	})
}

// keyExprs are the key columns as selected and compared: integers as they
// are, everything else as text compared byte by byte.
func keyExprs(keys []query.Key) []string {
	exprs := make([]string, len(keys))
	for i, k := range keys {
		col := "m." + pgx.Identifier{k.Name}.Sanitize()
		if k.Int {
			exprs[i] = col
			continue
		}
		exprs[i] = "(" + col + ")::text COLLATE \"C\""
	}
	return exprs
}

// orderBy sorts NULLs first, as record.AppendNull does.
func orderBy(keys []query.Key) string {
	exprs := keyExprs(keys)
	for i := range exprs {
		exprs[i] += " NULLS FIRST"
	}
	return strings.Join(exprs, ", ")
}

// appendKey encodes the key columns of a row, read in binary format.
func appendKey(k record.Key, keys []query.Key, raw [][]byte) (record.Key, error) {
	for i, key := range keys {
		v := raw[i]
		switch {
		case v == nil:
			k = record.AppendNull(k)
		case !key.Int:
			// AppendString copies the bytes; the string does not outlive the call.
			k = record.AppendString(k, unsafe.String(unsafe.SliceData(v), len(v)))
		default:
			n, err := binaryInt(v)
			if err != nil {
				return nil, fmt.Errorf("decoding key column %q: %w", key.Name, err)
			}
			k = record.AppendInt(k, n)
		}
	}
	return k, nil
}
