package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unsafe"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// Columns runs the model with no rows and returns its columns.
func (s *Source) Columns(ctx context.Context, sql string) ([]source.Column, error) {
	return s.columns(ctx, sql)
}

func (s *Source) columns(ctx context.Context, sql string) ([]source.Column, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT * FROM "+query.Wrap(sql)+" LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("running model: %w", err)
	}
	cols := make([]source.Column, len(types))
	for i, t := range types {
		cols[i] = source.Column{Name: t.Name(), Type: t.DatabaseTypeName(), Int: intTypes[t.DatabaseTypeName()]}
	}
	return cols, rows.Close()
}

// intTypes are the integer types whose values fit int64.
var intTypes = map[string]bool{
	"TINYINT": true, "SMALLINT": true, "INTEGER": true, "BIGINT": true,
	"UTINYINT": true, "USMALLINT": true, "UINTEGER": true,
}

func (s *Source) keys(ctx context.Context, m source.Model) ([]source.Column, []query.Key, error) {
	cols, err := s.columns(ctx, m.SQL)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	keys, err := query.Keys(names, m.PrimaryKey, func(i int) bool { return cols[i].Int })
	return cols, keys, err
}

// ScanHashes streams keys and md5 hashes of the rows, computed in DuckDB,
// in key order. A row's hashed text is the JSON array of its columns' text
// forms: NULL (null) differs from ” (""), and JSON string escaping keeps
// column boundaries unambiguous.
func (s *Source) ScanHashes(ctx context.Context, m source.Model, fn source.HashFunc) error {
	cols, keys, err := s.keys(ctx, m)
	if err != nil {
		return err
	}
	q := "SELECT " + strings.Join(selectKeys(keys), ", ") + ", " + rowHash(cols) + " FROM " +
		query.Wrap(m.SQL) + " ORDER BY " + orderBy(keys)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	parts := make([]keyPart, len(keys))
	var hash bytesCell
	dest := make([]any, 0, len(keys)+1)
	for i := range parts {
		dest = append(dest, &parts[i])
	}
	dest = append(dest, &hash)
	var key record.Key
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("reading model row: %w", err)
		}
		key = appendKey(key[:0], keys, parts)
		if err := fn(key, hash.b); err != nil {
			cancel()
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	return nil
}

// rowHash is the md5 of the row's JSON array of its columns' text forms.
func rowHash(cols []source.Column) string {
	texts := make([]string, len(cols))
	for i, c := range cols {
		texts[i] = "CAST(" + column(c.Name) + " AS VARCHAR)"
	}
	return "unhex(md5(CAST(to_json([" + strings.Join(texts, ", ") + "]) AS VARCHAR)))"
}

// ScanRows streams whole rows after the given key, in key order.
func (s *Source) ScanRows(ctx context.Context, m source.Model, after record.Key, fn source.RowFunc) error {
	cols, keys, err := s.keys(ctx, m)
	if err != nil {
		return err
	}
	names := make([]string, len(cols))
	exprs := make([]string, len(cols))
	cells := make([]cell, len(cols))
	for i, c := range cols {
		names[i] = c.Name
		p := plan(c.Type)
		exprs[i], cells[i].conv = column(c.Name), p.conv
		if p.expr != nil {
			exprs[i] = p.expr(exprs[i])
		}
	}
	if err := query.Unique(names); err != nil {
		return err
	}

	q := "SELECT " + strings.Join(exprs, ", ") + ", " + strings.Join(selectKeys(keys), ", ") +
		" FROM " + query.Wrap(m.SQL)
	var args []any
	if after != nil {
		parts, err := query.Parts(after, keys)
		if err != nil {
			return err
		}
		var cond string
		cond, args = query.After(compareKeys(keys), parts, func(n, i int) string {
			if keys[i].Int {
				return fmt.Sprintf("CAST($%d AS BIGINT)", n)
			}
			return fmt.Sprintf("CAST($%d AS VARCHAR)", n)
		}, false)
		q += " WHERE " + cond
	}
	q += " ORDER BY " + orderBy(keys)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	parts := make([]keyPart, len(keys))
	dest := make([]any, 0, len(cells)+len(parts))
	for i := range cells {
		dest = append(dest, &cells[i])
	}
	for i := range parts {
		dest = append(dest, &parts[i])
	}
	var key record.Key
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("reading model row: %w", err)
		}
		row := make(map[string]any, len(cells))
		for i, c := range cells {
			row[names[i]] = c.v
		}
		key = appendKey(key[:0], keys, parts)
		if err := fn(key, row); err != nil {
			cancel()
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	return nil
}

// column references a model column.
func column(name string) string {
	return `m."` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// selectKeys are the key columns as read: integers widened to BIGINT,
// everything else as text.
func selectKeys(keys []query.Key) []string {
	exprs := make([]string, len(keys))
	for i, k := range keys {
		if k.Int {
			exprs[i] = "CAST(" + column(k.Name) + " AS BIGINT)"
		} else {
			exprs[i] = "CAST(" + column(k.Name) + " AS VARCHAR)"
		}
	}
	return exprs
}

// compareKeys are the key columns as compared: integers numerically, text
// by bytes (collation c), whatever default_collation says.
func compareKeys(keys []query.Key) []string {
	exprs := make([]string, len(keys))
	for i, k := range keys {
		if k.Int {
			exprs[i] = column(k.Name)
		} else {
			exprs[i] = "(CAST(" + column(k.Name) + " AS VARCHAR) COLLATE c)"
		}
	}
	return exprs
}

// orderBy sorts NULLs first, as record.AppendNull does.
func orderBy(keys []query.Key) string {
	exprs := compareKeys(keys)
	for i := range exprs {
		exprs[i] += " NULLS FIRST"
	}
	return strings.Join(exprs, ", ")
}

func appendKey(k record.Key, keys []query.Key, parts []keyPart) record.Key {
	for i, p := range parts {
		switch {
		case p.null:
			k = record.AppendNull(k)
		case keys[i].Int:
			k = record.AppendInt(k, p.i)
		default:
			// AppendString copies the bytes; the string does not outlive the call.
			k = record.AppendString(k, unsafe.String(unsafe.SliceData(p.s), len(p.s)))
		}
	}
	return k
}

// keyPart scans one key column, reusing its buffer from row to row.
type keyPart struct {
	null bool
	i    int64
	s    []byte
}

func (p *keyPart) Scan(src any) error {
	p.null = false
	switch v := src.(type) {
	case nil:
		p.null = true
	case int64:
		p.i = v
	case string:
		p.s = append(p.s[:0], v...)
	case []byte:
		p.s = append(p.s[:0], v...)
	default:
		return fmt.Errorf("unexpected key value of type %T", src)
	}
	return nil
}

// bytesCell scans a BLOB into a buffer reused from row to row.
type bytesCell struct{ b []byte }

func (c *bytesCell) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok {
		return fmt.Errorf("unexpected hash of type %T", src)
	}
	c.b = append(c.b[:0], b...)
	return nil
}

var _ sql.Scanner = (*keyPart)(nil)
