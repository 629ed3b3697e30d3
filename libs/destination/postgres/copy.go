package postgres

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"github.com/ebb-etl/ebb/libs/record"
)

// columnKind is how COPY's text format carries a column's values so that
// Postgres reads what jsonb_populate_recordset would have given it.
type columnKind byte

const (
	// copyText: scalars as their text (strings as they are, numbers and
	// booleans as JSON writes them), objects and arrays as JSON text;
	// the column type's input function reads them, as it reads a JSON
	// scalar in jsonb_populate_recordset.
	copyText columnKind = iota
	// copyJSON: json and jsonb columns take every value as JSON, strings
	// quoted.
	copyJSON
	// noCopy: arrays and composites, which jsonb_populate_recordset
	// builds from JSON arrays and objects and COPY's text cannot express
	// the same way. A group writing one goes the JSON way.
	noCopy
)

// kindOf classifies a column by its type's category (pg_type.typcategory).
func kindOf(category string, isJSON bool) columnKind {
	switch {
	case isJSON:
		return copyJSON
	case category == "A" || category == "C":
		return noCopy
	}
	return copyText
}

// copyable reports whether a group's columns can all be copied, and the
// user may create the staging table.
func (d *Destination) copyable(fields []string) bool {
	if d.stage == "" {
		return false
	}
	for _, f := range fields {
		if d.kinds[f] == noCopy {
			return false
		}
	}
	return true
}

// stageName names the staging table of a target table: temporary tables
// live in the session's own schema, so one name per target is enough.
func stageName(ident string) string {
	h := fnv.New64a()
	h.Write([]byte(ident))
	return quote(fmt.Sprintf("ebb_stage_%016x", h.Sum64()))
}

// appendCopyRow appends a record's row in COPY text format: fields
// separated by tabs, \N for NULL, backslash escapes.
func (d *Destination) appendCopyRow(j *record.JSONBuffer, fields []string, r *record.Record) error {
	for i, f := range fields {
		if i > 0 {
			j.Buf = append(j.Buf, '\t')
		}
		if err := appendCopyValue(j, value(r, f), d.kinds[f] == copyJSON); err != nil {
			return fmt.Errorf("encoding field %q: %w", f, err)
		}
	}
	j.Buf = append(j.Buf, '\n')
	return nil
}

// appendCopyValue appends one value, escaped for COPY's text format.
func appendCopyValue(j *record.JSONBuffer, v any, asJSON bool) error {
	if v == nil {
		j.Buf = append(j.Buf, `\N`...)
		return nil
	}
	s, ok := v.(string)
	if !ok || asJSON {
		// Numbers and booleans as JSON writes them (which checks them),
		// objects and arrays as JSON text.
		return appendCopyJSON(j, v)
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD") // as the JSON path replaced it
	}
	j.Buf = appendEscaped(j.Buf, s)
	return nil
}

// appendCopyJSON appends v's JSON, escaped for COPY.
func appendCopyJSON(j *record.JSONBuffer, v any) error {
	start := len(j.Buf)
	if err := j.Value(v); err != nil {
		return err
	}
	// JSON output has no raw tabs or newlines; only its backslashes need
	// escaping, which is rare enough to do in place.
	if strings.IndexByte(string(j.Buf[start:]), '\\') < 0 {
		return nil
	}
	escaped := appendEscaped(nil, string(j.Buf[start:]))
	j.Buf = append(j.Buf[:start], escaped...)
	return nil
}

// appendEscaped writes s for COPY's text format: backslash, tab, newline
// and carriage return are escaped, everything else is as is.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc byte
		switch s[i] {
		case '\\':
			esc = '\\'
		case '\t':
			esc = 't'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		default:
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\', esc)
		start = i + 1
	}
	return append(b, s[start:]...)
}
