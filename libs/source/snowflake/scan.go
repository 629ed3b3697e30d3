package snowflake

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// Columns describes the model without running it.
func (s *Source) Columns(ctx context.Context, sql string) ([]source.Column, error) {
	cols, err := s.describe(ctx, sql)
	if err != nil {
		return nil, err
	}
	out := make([]source.Column, len(cols))
	for i, c := range cols {
		out[i] = source.Column{Name: c.name, Type: c.sqlType(), Int: c.isInt()}
	}
	return out, nil
}

// describe asks Snowflake for the model's result columns: a describe-only
// query is compiled, not run, so it needs no running warehouse.
func (s *Source) describe(ctx context.Context, sql string) ([]column, error) {
	rows, err := s.db.QueryContext(sf.WithDescribeOnly(ctx), "SELECT * FROM "+query.Wrap(sql))
	if err != nil {
		return nil, fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("running model: %w", err)
	}
	cols := make([]column, len(types))
	for i, t := range types {
		cols[i] = column{name: t.Name(), typ: t.DatabaseTypeName()}
		if precision, scale, ok := t.DecimalSize(); ok {
			cols[i].precision, cols[i].scale = precision, scale
		}
	}
	return cols, rows.Close()
}

// plan describes the model and resolves its key columns. Every column must
// have a type Ebb represents, so that a model the extractor could not read
// fails in the differ already.
func (s *Source) plan(ctx context.Context, m source.Model) ([]column, []query.Key, []convFunc, error) {
	cols, err := s.describe(ctx, m.SQL)
	if err != nil {
		return nil, nil, nil, err
	}
	names := make([]string, len(cols))
	convs := make([]convFunc, len(cols))
	for i, c := range cols {
		names[i] = c.name
		if convs[i], err = conv(c); err != nil {
			return nil, nil, nil, err
		}
	}
	keys, err := query.Keys(names, m.PrimaryKey, func(i int) bool { return cols[i].isInt() })
	return cols, keys, convs, err
}

// ScanHashes streams keys and md5 hashes of the rows, computed by Snowflake,
// in key order.
func (s *Source) ScanHashes(ctx context.Context, m source.Model, fn source.HashFunc) error {
	cols, keys, _, err := s.plan(ctx, m)
	if err != nil {
		return err
	}
	q := "SELECT " + strings.Join(selectKeys(keys), ", ") + ", MD5(" + rowText(cols) + ") FROM " +
		query.Wrap(m.SQL) + " ORDER BY " + orderBy(keys)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	defer rows.Close()
	parts := make([]keyPart, len(keys))
	dest := make([]any, 0, len(keys)+1)
	for i := range parts {
		parts[i].col, parts[i].int = keys[i].Name, keys[i].Int
		dest = append(dest, &parts[i])
	}
	var hash hashCell
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

// rowText is the text a row's hash is computed from: each column as 'n'
// for NULL, or 'v', the length of its text form, ':' and the text form.
// The length prefix keeps column boundaries unambiguous ('a,b' + 'c' differs
// from 'a' + 'b,c') and NULL differs from the empty string. JSON columns use TO_JSON, which
// tells a JSON null from SQL NULL and a string from a number.
func rowText(cols []column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		ref := ident(c.name)
		text := "CAST(" + ref + " AS VARCHAR)"
		if c.typ == "VARIANT" || c.typ == "OBJECT" || c.typ == "ARRAY" {
			text = "TO_JSON(" + ref + ")"
		}
		parts[i] = "CASE WHEN " + ref + " IS NULL THEN 'n' ELSE 'v' || CAST(LENGTH(" + text + ") AS VARCHAR) || ':' || " +
			text + " END"
	}
	if len(parts) == 0 {
		return "''"
	}
	return strings.Join(parts, " || ")
}

// ScanRows streams whole rows after the given key, in key order.
func (s *Source) ScanRows(ctx context.Context, m source.Model, after record.Key, fn source.RowFunc) error {
	cols, keys, convs, err := s.plan(ctx, m)
	if err != nil {
		return err
	}
	names := make([]string, len(cols))
	cells := make([]cell, len(cols))
	for i, c := range cols {
		names[i] = c.name
		cells[i] = cell{col: c.name, conv: convs[i]}
	}
	if err := query.Unique(names); err != nil {
		return err
	}

	q := "SELECT m.*, " + strings.Join(selectKeys(keys), ", ") + " FROM " + query.Wrap(m.SQL)
	var args []any
	if after != nil {
		parts, err := query.Parts(after, keys)
		if err != nil {
			return err
		}
		var cond string
		// Numbered binds (:n), since the condition uses some twice.
		cond, args = query.After(compareKeys(keys), parts, func(n, i int) string {
			if keys[i].Int {
				return fmt.Sprintf("CAST(:%d AS BIGINT)", n)
			}
			return fmt.Sprintf("CAST(:%d AS VARCHAR) COLLATE 'utf8'", n)
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
		parts[i].col, parts[i].int = keys[i].Name, keys[i].Int
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

// ident references a model column. Names are quoted as Snowflake reports
// them (upper case for unquoted identifiers), so they match exactly.
func ident(name string) string {
	return `m."` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// selectKeys are the key columns as read: integers as they are, everything
// else as text.
func selectKeys(keys []query.Key) []string {
	exprs := make([]string, len(keys))
	for i, k := range keys {
		if k.Int {
			exprs[i] = ident(k.Name)
		} else {
			exprs[i] = "CAST(" + ident(k.Name) + " AS VARCHAR)"
		}
	}
	return exprs
}

// compareKeys are the key columns as compared: integers numerically, text
// by UTF-8 bytes (collation 'utf8'), whatever collation the column has.
func compareKeys(keys []query.Key) []string {
	exprs := selectKeys(keys)
	for i, k := range keys {
		if !k.Int {
			exprs[i] += " COLLATE 'utf8'"
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

// keyPart scans one key column, reusing its buffer from row to row. JSON
// results give integers as text; one that does not fit int64 is an error
// naming the column, since keys encode integers as int64.
type keyPart struct {
	col  string
	int  bool
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
		if !p.int {
			p.s = append(p.s[:0], v...)
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("key column %q: %s is not a 64-bit integer", p.col, v)
		}
		p.i = n
	case []byte:
		p.s = append(p.s[:0], v...)
	default:
		return fmt.Errorf("key column %q: unexpected value of type %T", p.col, src)
	}
	return nil
}

// hashCell decodes the hex MD5 into a buffer reused from row to row.
type hashCell struct{ b []byte }

func (c *hashCell) Scan(src any) error {
	s, ok := src.(string)
	if !ok || len(s) != 32 {
		return fmt.Errorf("unexpected row hash %v (%T)", src, src)
	}
	var err error
	c.b, err = hex.AppendDecode(c.b[:0], []byte(s))
	return err
}

var _ sql.Scanner = (*keyPart)(nil)
