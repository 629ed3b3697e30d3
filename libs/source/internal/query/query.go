// Package query holds the SQL shaping the warehouse sources share: the model
// wrapped as a subquery, primary key checks and keyset resume conditions.
package query

import (
	"fmt"
	"strings"

	"github.com/ebb-etl/ebb/libs/record"
)

// Wrap returns the model as a subquery aliased m, the alias every generated
// statement uses. The newlines keep a trailing "--" comment in the model from
// swallowing the closing parenthesis.
func Wrap(sql string) string {
	return "(\n" + Trim(sql) + "\n) AS m"
}

// Trim removes surrounding space and trailing semicolons, which are valid at
// the end of a statement but not inside a subquery.
func Trim(sql string) string {
	return strings.TrimRight(strings.TrimSpace(sql), "; \t\r\n")
}

// Key is one primary key column of a model.
type Key struct {
	Name string
	// Int is true for integer columns, encoded with record.AppendInt and
	// ordered numerically; other columns are compared as text.
	Int bool
}

// Keys resolves the primary key columns against the model's column names.
// isInt reports whether the i-th model column has an integer type.
func Keys(columns, primaryKey []string, isInt func(i int) bool) ([]Key, error) {
	if len(primaryKey) == 0 {
		return nil, fmt.Errorf("model has no primary key columns")
	}
	keys := make([]Key, len(primaryKey))
	for i, name := range primaryKey {
		idx := -1
		for j, c := range columns {
			if c == name {
				idx = j
				break
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("primary key column %q is not in the model's columns (available: %s)",
				name, strings.Join(columns, ", "))
		}
		keys[i] = Key{Name: name, Int: isInt(idx)}
	}
	return keys, nil
}

// Unique checks that no two columns share a name: rows are maps keyed by
// column name, so a duplicate would silently drop a value.
func Unique(columns []string) error {
	seen := make(map[string]bool, len(columns))
	for _, c := range columns {
		if seen[c] {
			return fmt.Errorf("model has more than one column named %q: give each column a distinct name", c)
		}
		seen[c] = true
	}
	return nil
}

// Parts decodes a resume key and checks it against the model's key columns.
func Parts(after record.Key, keys []Key) ([]any, error) {
	parts, err := after.Parts()
	if err != nil {
		return nil, fmt.Errorf("resuming after key: %w", err)
	}
	if len(parts) != len(keys) {
		return nil, fmt.Errorf("resuming after key %s: it has %d parts but the model's primary key has %d columns",
			after, len(parts), len(keys))
	}
	for i, p := range parts {
		switch p.(type) {
		case nil:
		case int64:
			if !keys[i].Int {
				return nil, fmt.Errorf("resuming after key %s: part %d is an integer but column %q is compared as text",
					after, i+1, keys[i].Name)
			}
		case string:
			if keys[i].Int {
				return nil, fmt.Errorf("resuming after key %s: part %d is text but column %q is an integer",
					after, i+1, keys[i].Name)
			}
		}
	}
	return parts, nil
}

// After returns a condition true for rows whose key sorts after parts, in the
// order "ORDER BY exprs" gives with NULLS FIRST, and its arguments. param
// renders the placeholder for the n-th argument (1-based) of key column i.
//
// With rowValue and no NULL parts it is a row-value comparison, which
// Postgres can answer from an index. Otherwise it is the expanded
// lexicographic form, where a NULL part compares as the smallest value; that
// form is also right where row values compare NULLs as values (DuckDB).
func After(exprs []string, parts []any, param func(n, i int) string, rowValue bool) (string, []any) {
	hasNull := false
	for _, p := range parts {
		hasNull = hasNull || p == nil
	}
	var args []any
	if rowValue && !hasNull {
		ps := make([]string, len(parts))
		for i, p := range parts {
			args = append(args, p)
			ps[i] = param(len(args), i)
		}
		return "(" + strings.Join(exprs, ", ") + ") > (" + strings.Join(ps, ", ") + ")", args
	}
	// Built from the last column back: gt_i = e_i > p_i OR (e_i = p_i AND gt_i+1).
	cond := ""
	for i := len(parts) - 1; i >= 0; i-- {
		var gt, eq string
		if parts[i] == nil {
			gt, eq = exprs[i]+" IS NOT NULL", exprs[i]+" IS NULL"
		} else {
			args = append(args, parts[i])
			p := param(len(args), i)
			gt, eq = exprs[i]+" > "+p, exprs[i]+" = "+p
		}
		if cond == "" {
			cond = gt
			continue
		}
		cond = "(" + gt + " OR (" + eq + " AND " + cond + "))"
	}
	return cond, args
}
