package postgres

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// Dialect is how a Postgres wire-compatible warehouse is read: Postgres
// itself, or Redshift (package redshift).
type Dialect struct {
	// Name is the source type, in errors.
	Name string
	// Params are session settings sent when connecting: key parts and row
	// hashes are computed from text forms, which must not change with the
	// server's, the role's or the database's defaults.
	Params map[string]string
	// Portable restricts every generated statement to SQL that Redshift
	// accepts as well as Postgres, and reads results in text format, since
	// Redshift sends no binary results. See portableText for the functions
	// it uses and why each exists in both.
	Portable bool
}

// postgresDialect is Postgres's own: binary results, ROW(m.*)::text hashes,
// row-value comparisons and COLLATE "C".
func postgresDialect() Dialect {
	return Dialect{Name: "postgres", Params: map[string]string{
		"timezone":           "UTC",
		"datestyle":          "ISO, MDY",
		"intervalstyle":      "postgres",
		"extra_float_digits": "1",
	}}
}

// portableText is the type values are cast to for keys and hashes in the
// portable dialect. Redshift's TEXT and unsized VARCHAR mean VARCHAR(256),
// which would truncate; 65535 is Redshift's largest VARCHAR, and Postgres
// accepts the same declaration (its limit is 10485760).
const portableText = "VARCHAR(65535)"

// Type OIDs Redshift adds to Postgres's (none of them is a Postgres type).
const (
	redshiftSuperOID   = 4000
	redshiftVarbyteOID = 6551
)

// redshiftTypes names the types of Redshift that pgx does not know.
var redshiftTypes = map[uint32]string{
	2935:               "hllsketch",
	3000:               "geometry",
	3999:               "geography",
	redshiftSuperOID:   "super",
	redshiftVarbyteOID: "varbyte",
}

// textExpr renders a model column as text in the portable dialect.
//   - BOOLEAN: Redshift cannot CAST a boolean to VARCHAR, so a CASE spells
//     it as Postgres's boolean text does.
//   - SUPER: JSON_SERIALIZE gives its JSON text (Redshift only: SUPER never
//     appears on Postgres).
//   - VARBYTE: FROM_VARBYTE(.., 'hex') (Redshift only, likewise).
//   - anything else: CAST(.. AS VARCHAR(65535)), valid in both.
func textExpr(col string, oid uint32) string {
	switch oid {
	case pgtype.BoolOID:
		return "CASE WHEN " + col + " THEN 'true' WHEN NOT " + col + " THEN 'false' END"
	case redshiftSuperOID:
		return "JSON_SERIALIZE(" + col + ")"
	case redshiftVarbyteOID:
		return "FROM_VARBYTE(" + col + ", 'hex')"
	}
	return "CAST(" + col + " AS " + portableText + ")"
}

// colRef returns the model column m.name, quoted.
func colRef(name string) string { return "m." + pgx.Identifier{name}.Sanitize() }

// oidOf finds a model column's type.
func oidOf(fields []pgconn.FieldDescription, name string) uint32 {
	for _, f := range fields {
		if f.Name == name {
			return f.DataTypeOID
		}
	}
	return 0
}

// keyExprs are the key columns as selected and compared: integers as they
// are, everything else as text compared byte by byte. Postgres compares
// COLLATE "C"; Redshift has no COLLATE clause and compares strings by their
// bytes already (a database created case-insensitive is not supported), so
// the portable dialect leaves it out.
func (d Dialect) keyExprs(keys []query.Key, fields []pgconn.FieldDescription) []string {
	exprs := make([]string, len(keys))
	for i, k := range keys {
		col := colRef(k.Name)
		switch {
		case k.Int:
			exprs[i] = col
		case d.Portable:
			exprs[i] = textExpr(col, oidOf(fields, k.Name))
		default:
			exprs[i] = "(" + col + ")::text COLLATE \"C\""
		}
	}
	return exprs
}

// orderBy sorts NULLs first, as record.AppendNull does. Both Postgres and
// Redshift accept NULLS FIRST.
func (d Dialect) orderBy(keys []query.Key, fields []pgconn.FieldDescription) string {
	exprs := d.keyExprs(keys, fields)
	for i := range exprs {
		exprs[i] += " NULLS FIRST"
	}
	return strings.Join(exprs, ", ")
}

// rowHash is the hash of a whole row, 16 bytes of md5.
//
// Postgres: ROW(m.*)::text quotes empty strings and leaves NULLs empty, so
// NULL and the empty string hash differently, and quotes values containing
// delimiters.
//
// Portable: Redshift has neither ROW(m.*)::text nor decode(.., 'hex'). Each
// column is hashed on its own with MD5 (in both), NULL becomes the marker
// 'n' (never 32 hex digits), and the parts are joined with '|' and hashed
// again. Each part is 32 characters or 'n', so no value can spill into its
// neighbour, and the row's text stays within VARCHAR(65535) for Redshift's
// 1,600 columns. The 32 hex digits are decoded by the client. FNV_HASH is
// not used: Postgres lacks it, and its 64 bits are fewer than the 16 bytes
// the differ keeps.
func (d Dialect) rowHash(fields []pgconn.FieldDescription) string {
	if !d.Portable {
		return "decode(md5(ROW(m.*)::text), 'hex')"
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = "COALESCE(MD5(" + textExpr(colRef(f.Name), f.DataTypeOID) + "), 'n')"
	}
	return "MD5(" + strings.Join(parts, " || '|' || ") + ")"
}

// hashSQL selects each row's key columns and hash, in key order.
func (d Dialect) hashSQL(model string, fields []pgconn.FieldDescription, keys []query.Key) string {
	return "SELECT " + strings.Join(d.keyExprs(keys, fields), ", ") + ", " + d.rowHash(fields) +
		" FROM " + query.Wrap(model) + " ORDER BY " + d.orderBy(keys, fields)
}

// rowsSQL selects whole rows and their key columns after a key, in key
// order, and its arguments. Postgres resumes with a row-value comparison
// (index friendly); Redshift has no row-value comparisons, so the portable
// dialect uses the expanded form, and CASTs instead of "::".
func (d Dialect) rowsSQL(model string, fields []pgconn.FieldDescription, keys []query.Key, after record.Key) (string, []any, error) {
	exprs := d.keyExprs(keys, fields)
	sql := "SELECT m.*, " + strings.Join(exprs, ", ") + " FROM " + query.Wrap(model)
	var args []any
	if after != nil {
		parts, err := query.Parts(after, keys)
		if err != nil {
			return "", nil, err
		}
		var cond string
		cond, args = query.After(exprs, parts, func(n, i int) string { return d.param(n, keys[i].Int) }, !d.Portable)
		sql += " WHERE " + cond
	}
	return sql + " ORDER BY " + d.orderBy(keys, fields), args, nil
}

// keyRowsSQL selects whole rows and their key columns for the given keys,
// in key order. The keys go as one array per key column; the condition
// compares the columns without the ordering's COLLATE, so an index on
// them serves it (equality does not depend on a deterministic collation).
func (d Dialect) keyRowsSQL(model string, fields []pgconn.FieldDescription, keys []query.Key, want []record.Key) (string, []any, error) {
	cols := make([]string, len(keys))
	arrays := make([]any, len(keys))
	for i, k := range keys {
		if k.Int {
			cols[i] = colRef(k.Name)
			arrays[i] = make([]int64, 0, len(want))
		} else {
			cols[i] = "(" + colRef(k.Name) + ")::text"
			arrays[i] = make([]string, 0, len(want))
		}
	}
	for _, key := range want {
		parts, err := query.Parts(key, keys)
		if err != nil {
			return "", nil, err
		}
		for i, p := range parts {
			switch v := p.(type) {
			case int64:
				arrays[i] = append(arrays[i].([]int64), v)
			case string:
				arrays[i] = append(arrays[i].([]string), v)
			default:
				return "", nil, fmt.Errorf("fetching rows by key: key %s has a NULL part", key)
			}
		}
	}
	params := make([]string, len(keys))
	for i, k := range keys {
		params[i] = fmt.Sprintf("$%d::text[]", i+1)
		if k.Int {
			params[i] = fmt.Sprintf("$%d::int8[]", i+1)
		}
	}
	var cond string
	if len(keys) == 1 {
		cond = cols[0] + " = ANY(" + params[0] + ")"
	} else {
		cond = "(" + strings.Join(cols, ", ") + ") IN (SELECT * FROM unnest(" + strings.Join(params, ", ") + "))"
	}
	exprs := d.keyExprs(keys, fields)
	sql := "SELECT m.*, " + strings.Join(exprs, ", ") + " FROM " + query.Wrap(model) + " WHERE " + cond +
		" ORDER BY " + d.orderBy(keys, fields)
	return sql, arrays, nil
}

// param is the n-th placeholder, typed as the key column compares.
func (d Dialect) param(n int, isInt bool) string {
	switch {
	case !d.Portable && isInt:
		return fmt.Sprintf("$%d::int8", n)
	case !d.Portable:
		return fmt.Sprintf("$%d::text", n)
	case isInt:
		return fmt.Sprintf("CAST($%d AS BIGINT)", n)
	}
	return fmt.Sprintf("CAST($%d AS %s)", n, portableText)
}

// keyExprs are the key columns in Postgres's dialect.
func keyExprs(keys []query.Key) []string { return postgresDialect().keyExprs(keys, nil) }

// orderBy is the key order in Postgres's dialect.
func orderBy(keys []query.Key) string { return postgresDialect().orderBy(keys, nil) }

// Column is a model column as the server describes it, for HashSQL and
// RowsSQL.
type Column struct {
	Name string
	OID  uint32
}

// HashSQL is the statement ScanHashes runs for a model with these columns.
func (d Dialect) HashSQL(model string, cols []Column, primaryKey []string) (string, error) {
	fields := fieldsOf(cols)
	keys, err := keysOf(fields, primaryKey)
	if err != nil {
		return "", err
	}
	return d.hashSQL(model, fields, keys), nil
}

// RowsSQL is the statement ScanRows runs for a model with these columns,
// and its arguments.
func (d Dialect) RowsSQL(model string, cols []Column, primaryKey []string, after record.Key) (string, []any, error) {
	fields := fieldsOf(cols)
	keys, err := keysOf(fields, primaryKey)
	if err != nil {
		return "", nil, err
	}
	return d.rowsSQL(model, fields, keys, after)
}

func fieldsOf(cols []Column) []pgconn.FieldDescription {
	fields := make([]pgconn.FieldDescription, len(cols))
	for i, c := range cols {
		fields[i] = pgconn.FieldDescription{Name: c.Name, DataTypeOID: c.OID}
	}
	return fields
}
