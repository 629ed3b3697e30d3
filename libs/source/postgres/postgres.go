// Package postgres reads models from PostgreSQL (and wire-compatible
// warehouses) with a pgx connection pool.
package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
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
	d    Dialect
	// schema holds the warehouse diff engine's tables (config field
	// "snapshot_schema").
	schema string
}

var _ source.Source = (*Source)(nil)

// Open connects to the database named by cfg["dsn"], a libpq connection
// string or URL.
func Open(ctx context.Context, cfg map[string]any) (*Source, error) {
	return OpenDialect(ctx, cfg, postgresDialect())
}

// OpenDialect connects to a wire-compatible warehouse named by cfg["dsn"]
// and reads it in dialect d.
func OpenDialect(ctx context.Context, cfg map[string]any, d Dialect) (*Source, error) {
	dsn, ok := cfg["dsn"].(string)
	if !ok || dsn == "" {
		return nil, fmt.Errorf(`%s source: config field "dsn" is required and must be a string`, d.Name)
	}
	schema, err := source.SnapshotSchema(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", d.Name, err)
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password from parse errors.
		return nil, fmt.Errorf("%s source: parsing dsn: %w", d.Name, err)
	}
	// Key parts and row hashes are computed from text forms, which must not
	// change with the server's, the role's or the database's defaults.
	rp := pc.ConnConfig.RuntimeParams
	for k, v := range d.Params {
		rp[k] = v
	}
	if rp["application_name"] == "" {
		rp["application_name"] = "ebb"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", d.Name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s source: connecting: %w", d.Name, err)
	}
	return &Source{pool: pool, d: d, schema: schema}, nil
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
		name, err := s.typeName(ctx, conn.Conn(), f.DataTypeOID)
		if err != nil {
			return nil, err
		}
		cols[i] = source.Column{Name: f.Name, Type: name, Int: isIntOID(f.DataTypeOID)}
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
	sql := s.d.hashSQL(m.SQL, fields, keys)
	formats := make(pgx.QueryResultFormats, len(keys)+1)
	for i := range formats {
		formats[i] = pgx.BinaryFormatCode
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.query(ctx, conn.Conn(), sql, formats, nil)
	if err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	var key record.Key
	var hash [md5.Size]byte
	n := len(keys)
	for rows.Next() {
		raw := rows.RawValues()
		if key, err = s.appendKey(key[:0], keys, raw); err != nil {
			return err
		}
		h := raw[n]
		if s.d.Portable {
			// The portable hash arrives as 32 hex digits of text.
			if _, err := hex.Decode(hash[:], h); err != nil || len(h) != 2*md5.Size {
				stop(cancel, rows)
				return fmt.Errorf("decoding row hash %q: not %d hex digits", h, 2*md5.Size)
			}
			h = hash[:]
		}
		if err := fn(key, h); err != nil {
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
	return s.streamRows(ctx, m, fn, func(fields []pgconn.FieldDescription, keys []query.Key) (string, []any, error) {
		return s.d.rowsSQL(m.SQL, fields, keys, after)
	})
}

// FetchesRows reports whether FetchRows works: Redshift has no arrays to
// pass the keys in.
func (s *Source) FetchesRows() bool { return !s.d.Portable }

// FetchRows streams the rows with the given keys, in key order.
func (s *Source) FetchRows(ctx context.Context, m source.Model, want []record.Key, fn source.RowFunc) error {
	if !s.FetchesRows() {
		return errors.New("fetching rows by key: not supported by this dialect")
	}
	return s.streamRows(ctx, m, fn, func(fields []pgconn.FieldDescription, keys []query.Key) (string, []any, error) {
		return s.d.keyRowsSQL(m.SQL, fields, keys, want)
	})
}

// streamRows runs the statement build makes for the model's columns and
// keys, and hands each row and its key to fn.
func (s *Source) streamRows(ctx context.Context, m source.Model, fn source.RowFunc,
	build func([]pgconn.FieldDescription, []query.Key) (string, []any, error)) error {
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
	if s.d.Portable {
		cols, err = textColumnsOf(fields)
	}
	if err != nil {
		return err
	}
	sql, args, err := build(fields, keys)
	if err != nil {
		return err
	}

	formats := make(pgx.QueryResultFormats, len(cols)+len(keys))
	for i := range formats {
		formats[i] = pgx.BinaryFormatCode
		if i < len(cols) {
			formats[i] = cols[i].format
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.query(ctx, conn.Conn(), sql, formats, args)
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
		if key, err = s.appendKey(key[:0], keys, raw[len(cols):]); err != nil {
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

// query runs a scan. Postgres reads the formats asked for, on the unnamed
// statement described first. The portable dialect uses the "exec" mode:
// parameters and results in text format, as Redshift has no binary format.
func (s *Source) query(ctx context.Context, conn *pgx.Conn, sql string, formats pgx.QueryResultFormats, args []any) (pgx.Rows, error) {
	if s.d.Portable {
		return conn.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
	}
	return conn.Query(ctx, sql, append([]any{pgx.QueryExecModeDescribeExec, formats}, args...)...)
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
func (s *Source) typeName(ctx context.Context, conn *pgx.Conn, oid uint32) (string, error) {
	if name, ok := redshiftTypes[oid]; ok && s.d.Portable {
		return name, nil
	}
	if t, ok := conn.TypeMap().TypeForOID(oid); ok {
		return t.Name, nil
	}
	mode := pgx.QueryExecModeCacheStatement
	if s.d.Portable {
		mode = pgx.QueryExecModeExec
	}
	var name string
	if err := conn.QueryRow(ctx, "SELECT format_type($1, NULL)", mode, oid).Scan(&name); err != nil {
		return "", fmt.Errorf("naming type %d: %w", oid, err)
	}
	return name, nil
}

func keysOf(fields []pgconn.FieldDescription, primaryKey []string) ([]query.Key, error) {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return query.Keys(names, primaryKey, func(i int) bool { return isIntOID(fields[i].DataTypeOID) })
}

// isIntOID reports whether a type is one of the integers keys encode as
// integers.
func isIntOID(oid uint32) bool {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		return true
	}
	return false
}

// appendKey encodes the key columns of a row, integers in binary format.
func appendKey(k record.Key, keys []query.Key, raw [][]byte) (record.Key, error) {
	return appendKeyWith(k, keys, raw, binaryInt)
}

// appendKey encodes the key columns of a row: integers in binary format,
// or in text format in the portable dialect.
func (s *Source) appendKey(k record.Key, keys []query.Key, raw [][]byte) (record.Key, error) {
	return appendKeyWith(k, keys, raw, s.keyInt)
}

func appendKeyWith(k record.Key, keys []query.Key, raw [][]byte, keyInt func([]byte) (int64, error)) (record.Key, error) {
	for i, key := range keys {
		v := raw[i]
		switch {
		case v == nil:
			k = record.AppendNull(k)
		case !key.Int:
			// AppendString copies the bytes; the string does not outlive the call.
			k = record.AppendString(k, unsafe.String(unsafe.SliceData(v), len(v)))
		default:
			n, err := keyInt(v)
			if err != nil {
				return nil, fmt.Errorf("decoding key column %q: %w", key.Name, err)
			}
			k = record.AppendInt(k, n)
		}
	}
	return k, nil
}

func (s *Source) keyInt(v []byte) (int64, error) {
	if s.d.Portable {
		return strconv.ParseInt(unsafe.String(unsafe.SliceData(v), len(v)), 10, 64)
	}
	return binaryInt(v)
}
