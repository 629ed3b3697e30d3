// Package postgres writes records into a Postgres table.
//
// Each batch is one transaction. Records are grouped by operation and
// shape, and each group is one statement, so a batch costs a handful of
// round trips whatever its size. A group's rows are copied (COPY, text
// format) into a staging table of the connection's session, emptied at
// commit, and the statement reads them from there; a group writing an
// array or composite column, whose values only JSON describes, is instead
// read from a JSON array expanded with jsonb_populate_recordset. Either
// way Postgres casts every value with its column type's input function.
// COPY took half the server time of the JSON path. Inserts are written as
// upserts, so a batch delivered again after a crash changes nothing.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/record"
)

// maxConns caps the pool whatever the delivery concurrency, so a wide
// destination does not exhaust the server's max_connections.
const maxConns = 32

// Destination is a Postgres table. It is safe for concurrent use.
type Destination struct {
	pool    *pgxpool.Pool
	name    string // the table as configured, for messages
	ident   string // the table, quoted and schema-qualified, for SQL
	timeout time.Duration

	// columns maps each column to whether it can be written (generated
	// columns cannot). Read once at Open.
	columns map[string]bool
	// kinds says how each column's values are written by COPY.
	kinds map[string]columnKind
	// stage is the session's staging table for COPY, quoted; "" when the
	// user may not create temporary tables, and every group goes as JSON.
	stage string
	// uniques are the column sets, sorted, of the unique indexes ON
	// CONFLICT can use.
	uniques [][]string

	mu   sync.Mutex
	keys map[string]error // key column set → why it cannot be used, nil if it can
}

// Open connects, checks that the table exists and reads its columns and
// unique indexes.
func Open(ctx context.Context, cfg map[string]any, opts config.DeliveryOptions) (*Destination, error) {
	dsn, err := stringField(cfg, "dsn")
	if err != nil {
		return nil, err
	}
	table, err := stringField(cfg, "table")
	if err != nil {
		return nil, err
	}
	ident, err := parseTable(table)
	if err != nil {
		return nil, fmt.Errorf("postgres config.table: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN with the password redacted on a
		// best-effort basis only: say nothing of its content.
		return nil, errors.New("postgres config.dsn: not a valid connection string (want postgres://user@host:port/db or key=value pairs)")
	}
	pcfg.MaxConns = int32(min(max(opts.Partitions, 1)*max(opts.AckWindow, 1), maxConns))
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connecting: %w", err)
	}
	d := &Destination{
		pool:    pool,
		name:    table,
		ident:   ident.Sanitize(),
		stage:   stageName(ident.Sanitize()),
		timeout: opts.Timeout,
		keys:    map[string]error{},
	}
	if d.timeout <= 0 {
		d.timeout = config.DefaultTimeout
	}
	if err := d.describe(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return d, nil
}

func stringField(cfg map[string]any, name string) (string, error) {
	v, ok := cfg[name]
	if !ok || v == nil {
		return "", fmt.Errorf("postgres config.%s is required", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("postgres config.%s: want a string, got %T", name, v)
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("postgres config.%s is required", name)
	}
	return s, nil
}

// parseTable reads "table" or "schema.table" the way Postgres reads SQL:
// unquoted names fold to lower case, "quoted" names are kept as written.
func parseTable(s string) (pgx.Identifier, error) {
	var parts pgx.Identifier
	rest := strings.TrimSpace(s)
	for {
		var part string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest); i++ {
				if rest[i] == '"' {
					if i+1 < len(rest) && rest[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					break
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return nil, fmt.Errorf("%q has an unterminated quoted name", s)
			}
			part, rest = b.String(), rest[i+1:]
		} else {
			end := strings.IndexByte(rest, '.')
			if end < 0 {
				end = len(rest)
			}
			part, rest = strings.ToLower(strings.TrimSpace(rest[:end])), rest[end:]
			if strings.ContainsAny(part, `" `) {
				return nil, fmt.Errorf("%q: quote names that contain spaces or quotes", s)
			}
		}
		if part == "" {
			return nil, fmt.Errorf("%q has an empty name", s)
		}
		parts = append(parts, part)
		if rest == "" {
			break
		}
		if rest[0] != '.' {
			return nil, fmt.Errorf("%q: unexpected text after a quoted name", s)
		}
		rest = rest[1:]
	}
	if len(parts) > 2 {
		return nil, fmt.Errorf("%q: want table or schema.table", s)
	}
	return parts, nil
}

// describe reads the table's columns and the unique indexes ON CONFLICT can
// infer: immediate, not partial, not on expressions.
func (d *Destination) describe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var oid *uint32
	var kind *string
	err := d.pool.QueryRow(ctx,
		`SELECT c.oid, c.relkind::text FROM pg_class c WHERE c.oid = to_regclass($1)`, d.ident,
	).Scan(&oid, &kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: table %s does not exist (or is not visible to this user)", d.name)
	}
	if err != nil {
		return fmt.Errorf("postgres: looking up table %s: %w", d.name, err)
	}
	if *kind != "r" && *kind != "p" {
		return fmt.Errorf("postgres: %s is not a table", d.name)
	}

	// A domain has its base type's category; json and jsonb are told
	// apart by the base type.
	rows, err := d.pool.Query(ctx, `
		SELECT a.attname, a.attgenerated = '', t.typcategory::text,
			(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)::regtype::text IN ('json', 'jsonb')
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`, *oid)
	if err != nil {
		return fmt.Errorf("postgres: reading columns of %s: %w", d.name, err)
	}
	d.columns, d.kinds = map[string]bool{}, map[string]columnKind{}
	var name, category string
	var writable, isJSON bool
	_, err = pgx.ForEachRow(rows, []any{&name, &writable, &category, &isJSON}, func() error {
		d.columns[name] = writable
		d.kinds[name] = kindOf(category, isJSON)
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: reading columns of %s: %w", d.name, err)
	}

	var mayStage bool
	if err := d.pool.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'TEMPORARY')`).Scan(&mayStage); err != nil {
		return fmt.Errorf("postgres: checking the right to create temporary tables: %w", err)
	}
	if !mayStage {
		d.stage = ""
	}

	rows, err = d.pool.Query(ctx, `
		SELECT array_agg(a.attname::text ORDER BY a.attname)
		FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid
			AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
		WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indisvalid
			AND i.indpred IS NULL AND i.indexprs IS NULL
		GROUP BY i.indexrelid`, *oid)
	if err != nil {
		return fmt.Errorf("postgres: reading unique indexes of %s: %w", d.name, err)
	}
	var cols []string
	_, err = pgx.ForEachRow(rows, []any{&cols}, func() error {
		d.uniques = append(d.uniques, slices.Clone(cols))
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: reading unique indexes of %s: %w", d.name, err)
	}
	return nil
}

// Close closes the connection pool.
func (d *Destination) Close() error {
	d.pool.Close()
	return nil
}

// opKind is how a record is written: inserts and upserts share a statement.
type opKind byte

const (
	kindUpsert opKind = iota
	kindUpdate
	kindDelete
)

// group is the records written by one statement: same kind, same key
// columns, same fields. Its rows are encoded as they are added: COPY
// text when its columns allow (staged), else a JSON array.
type group struct {
	kind   opKind
	keys   []string // sorted
	fields []string // sorted, keys included
	staged bool
	rows   record.JSONBuffer
	count  int
}

// Write writes the batch in one transaction. Records that cannot be
// written whatever the others do (unknown field, unusable key, a value
// that cannot be encoded) fail on their own before the transaction; an
// error the database raises fails the batch, permanently for data errors
// so the caller can isolate the record.
func (d *Destination) Write(ctx context.Context, b destination.Batch) ([]error, error) {
	errs := make([]error, len(b.Records))
	var groups []*group
	for _, g := range d.group(b, errs) {
		if g.count > 0 && (g.kind != kindUpdate || len(g.fields) > len(g.keys)) {
			groups = append(groups, g) // an update naming only its key has nothing to do
		}
	}
	if len(groups) == 0 {
		return errs, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		staging := false // the staging table holds rows of this transaction
		for _, g := range groups {
			if err := d.run(ctx, tx, g, &staging); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, d.classify(err)
	}
	return errs, nil
}

// group sorts the batch's records into groups and encodes their rows,
// recording in errs the records that cannot be written.
func (d *Destination) group(b destination.Batch, errs []error) []*group {
	var groups []*group
	index := map[string]*group{}
	var sig strings.Builder
	for i := range b.Records {
		r := &b.Records[i]
		kind, keys, fields, err := d.plan(r)
		if err != nil {
			errs[i] = err
			continue
		}
		sig.Reset()
		sig.WriteByte(byte(kind))
		for _, k := range keys {
			sig.WriteString(k)
			sig.WriteByte(0)
		}
		sig.WriteByte(1)
		for _, f := range fields {
			sig.WriteString(f)
			sig.WriteByte(0)
		}
		g := index[sig.String()]
		if g == nil {
			g = &group{kind: kind, keys: keys, fields: fields, staged: d.copyable(fields)}
			index[sig.String()] = g
			groups = append(groups, g)
		}
		if err := d.add(g, r); err != nil {
			errs[i] = err
		}
	}
	return groups
}

// add encodes a record's row into its group, or leaves the group as it
// was and says why it cannot.
func (d *Destination) add(g *group, r *record.Record) error {
	mark := len(g.rows.Buf)
	var err error
	if g.staged {
		err = d.appendCopyRow(&g.rows, g.fields, r)
	} else {
		err = appendJSONRow(&g.rows, g.fields, r, g.count == 0)
	}
	if err != nil {
		g.rows.Buf = g.rows.Buf[:mark]
		return err
	}
	g.count++
	return nil
}

// run executes a group's statement in tx. A staged group's rows are
// copied into the session's staging table first: created if this
// session has none yet, emptied if an earlier group of the transaction
// filled it (commit empties it too).
func (d *Destination) run(ctx context.Context, tx pgx.Tx, g *group, staging *bool) error {
	if !g.staged {
		src := "jsonb_populate_recordset(NULL::" + d.ident + ", $1::jsonb)"
		_, err := tx.Exec(ctx, d.statement(g, src), string(append(g.rows.Buf, ']')))
		return err
	}
	prep := "CREATE TEMP TABLE IF NOT EXISTS " + d.stage + " ON COMMIT DELETE ROWS AS SELECT * FROM " + d.ident + " WITH NO DATA"
	if *staging {
		prep = "TRUNCATE " + d.stage
	}
	if _, err := tx.Exec(ctx, prep); err != nil {
		return err
	}
	*staging = true
	cols := make([]string, len(g.fields))
	for i, f := range g.fields {
		cols[i] = quote(f)
	}
	copySQL := "COPY " + d.stage + " (" + strings.Join(cols, ", ") + ") FROM STDIN"
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(g.rows.Buf), copySQL); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, d.statement(g, d.stage))
	return err
}

// plan checks a record against the table and says how to write it.
func (d *Destination) plan(r *record.Record) (opKind, []string, []string, error) {
	var kind opKind
	switch r.Op {
	case record.OpUpsert, record.OpInsert:
		kind = kindUpsert
	case record.OpUpdate:
		kind = kindUpdate
	case record.OpDelete:
		kind = kindDelete
	default:
		return 0, nil, nil, fmt.Errorf("unknown op %q", r.Op)
	}
	if len(r.Key) == 0 {
		return 0, nil, nil, errors.New("record has no key")
	}
	keys := make([]string, 0, len(r.Key))
	for k := range r.Key {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if err := d.checkKey(keys); err != nil {
		return 0, nil, nil, err
	}
	if kind == kindDelete {
		return kind, keys, keys, nil
	}

	fields := slices.Grow(slices.Clone(keys), len(r.Data))
	var unknown, generated []string
	for f := range r.Data {
		if _, isKey := r.Key[f]; isKey {
			continue
		}
		writable, ok := d.columns[f]
		switch {
		case !ok:
			unknown = append(unknown, f)
		case !writable:
			generated = append(generated, f)
		default:
			fields = append(fields, f)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return 0, nil, nil, fmt.Errorf("%s not a column of table %s", describeNames("field", unknown), d.name)
	}
	if len(generated) > 0 {
		slices.Sort(generated)
		return 0, nil, nil, fmt.Errorf("%s a generated column of table %s and cannot be written", describeNames("field", generated), d.name)
	}
	slices.Sort(fields)
	return kind, keys, fields, nil
}

// describeNames renders `field "a" is` or `fields "a", "b" are`.
func describeNames(noun string, names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	if len(names) == 1 {
		return fmt.Sprintf("%s %s is", noun, quoted[0])
	}
	return fmt.Sprintf("%ss %s are", noun, strings.Join(quoted, ", "))
}

// checkKey reports whether sorted key columns exist and have a unique index,
// which ON CONFLICT needs and which makes a key name one row.
func (d *Destination) checkKey(keys []string) error {
	sig := strings.Join(keys, "\x00")
	d.mu.Lock()
	defer d.mu.Unlock()
	if err, ok := d.keys[sig]; ok {
		return err
	}
	var err error
	var missing []string
	for _, k := range keys {
		if _, ok := d.columns[k]; !ok {
			missing = append(missing, k)
		}
	}
	switch {
	case len(missing) > 0:
		err = fmt.Errorf("key %s not a column of table %s", describeNames("column", missing), d.name)
	case !slices.ContainsFunc(d.uniques, func(u []string) bool { return slices.Equal(u, keys) }):
		err = fmt.Errorf("key columns (%s) of table %s have no primary key or unique index on exactly them", strings.Join(keys, ", "), d.name)
	}
	d.keys[sig] = err
	return err
}

// value is a record's value for a column: the key's, else the data's.
func value(r *record.Record, field string) any {
	if v, ok := r.Key[field]; ok {
		return v
	}
	return r.Data[field]
}

// appendJSONRow appends a record's row to a group's JSON array (opened
// by the first row; run closes it).
func appendJSONRow(j *record.JSONBuffer, fields []string, r *record.Record, first bool) error {
	if first {
		j.Buf = append(j.Buf, '[')
	} else {
		j.Buf = append(j.Buf, ',')
	}
	j.Buf = append(j.Buf, '{')
	for i, f := range fields {
		if i > 0 {
			j.Buf = append(j.Buf, ',')
		}
		j.String(f)
		j.Buf = append(j.Buf, ':')
		if err := j.Value(value(r, f)); err != nil {
			return fmt.Errorf("encoding field %q: %w", f, err)
		}
	}
	j.Buf = append(j.Buf, '}')
	return nil
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// statement builds the SQL of a group reading its rows from src; "" when
// there is nothing to do (an update that only names the key).
func (d *Destination) statement(g *group, src string) string {
	var sb strings.Builder
	var match []string
	for _, k := range g.keys {
		match = append(match, "dst."+quote(k)+" = src."+quote(k))
	}
	var set []string // non-key fields
	for _, f := range g.fields {
		if !slices.Contains(g.keys, f) {
			set = append(set, f)
		}
	}
	switch g.kind {
	case kindUpsert:
		cols := make([]string, len(g.fields))
		for i, f := range g.fields {
			cols[i] = quote(f)
		}
		keys := make([]string, len(g.keys))
		for i, k := range g.keys {
			keys[i] = quote(k)
		}
		fmt.Fprintf(&sb, "INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT (%s) ",
			d.ident, strings.Join(cols, ", "), strings.Join(cols, ", "), src, strings.Join(keys, ", "))
		if len(set) == 0 {
			sb.WriteString("DO NOTHING")
			break
		}
		sb.WriteString("DO UPDATE SET ")
		for i, f := range set {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(quote(f) + " = EXCLUDED." + quote(f))
		}
	case kindUpdate:
		if len(set) == 0 {
			return ""
		}
		fmt.Fprintf(&sb, "UPDATE %s AS dst SET ", d.ident)
		for i, f := range set {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(quote(f) + " = src." + quote(f))
		}
		fmt.Fprintf(&sb, " FROM %s AS src WHERE %s", src, strings.Join(match, " AND "))
	case kindDelete:
		fmt.Fprintf(&sb, "DELETE FROM %s AS dst USING %s AS src WHERE %s", d.ident, src, strings.Join(match, " AND "))
	}
	return sb.String()
}

// classify marks what the database refused because of the data as
// permanent: retrying the same rows gives the same answer, and the caller
// splits the batch to find the row. Anything else (connection lost,
// serialization failure, shutdown, timeout) may succeed when retried.
func (d *Destination) classify(err error) error {
	err = fmt.Errorf("writing to table %s: %w", d.name, err)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "21", // cardinality violation: the same key twice in one statement
			"22", // data exception: a value that does not fit its column
			"23", // integrity constraint violation
			"42", // syntax error or access rule violation: a column of the wrong type, a missing grant
			"44": // with check option violation
			return destination.Permanent(err)
		}
	}
	return err
}
