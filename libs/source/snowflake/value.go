package snowflake

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ebb-etl/ebb/libs/source/internal/canon"
)

// column is one column of a model's result, as Snowflake describes it.
type column struct {
	name string
	// typ is the driver's upper-case name of Snowflake's wire type: FIXED
	// for every NUMBER, TEXT, TIMESTAMP_TZ, VARIANT, ...
	typ              string
	precision, scale int64
}

// sqlType names the column's type as Snowflake's SQL does, for
// source.Column: NUMBER(p,s) for FIXED, whose precision and scale decide
// how values and keys are read, the wire type's name otherwise.
func (c column) sqlType() string {
	if c.typ == "FIXED" {
		return fmt.Sprintf("NUMBER(%d,%d)", cmp.Or(c.precision, 38), c.scale)
	}
	return c.typ
}

// isInt reports whether the column is an integer NUMBER, encoded in keys
// with record.AppendInt.
func (c column) isInt() bool { return c.typ == "FIXED" && c.scale == 0 }

// isJSON reports whether values of the column are JSON documents.
func (c column) isJSON() bool { return jsonTypes[c.typ] }

// jsonTypes hold JSON text in JSON results: semi-structured and structured
// types, geospatial values (GeoJSON, see sessionParams) and vectors.
var jsonTypes = map[string]bool{
	"VARIANT": true, "OBJECT": true, "ARRAY": true, "MAP": true,
	"GEOGRAPHY": true, "GEOMETRY": true, "VECTOR": true,
}

// convFunc turns a non-NULL value from the driver into its canonical form.
type convFunc func(v any) (any, error)

// convs convert the values of each wire type Ebb represents.
var convs = map[string]convFunc{
	"TEXT":          convText,
	"BOOLEAN":       convBool,
	"REAL":          convReal,
	"DECFLOAT":      convDecimal,
	"DATE":          convTime(canon.Date),
	"TIME":          convTime(func(t time.Time) string { return t.Format(canon.TimeLayout) }),
	"TIMESTAMP_NTZ": convTime(canon.Timestamp),
	"TIMESTAMP_LTZ": convTime(canon.TimestampTZ),
	"TIMESTAMP_TZ":  convTime(canon.TimestampTZ),
	"BINARY":        convBinary,
}

// conv picks the conversion of a column, or says Ebb cannot represent its
// type.
func conv(c column) (convFunc, error) {
	switch {
	case c.isInt():
		return convInt, nil
	case c.typ == "FIXED":
		return convDecimal, nil
	case c.isJSON():
		return convJSON, nil
	}
	if f, ok := convs[c.typ]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("column %q has Snowflake type %s, which Ebb cannot represent: cast it in the model (to VARCHAR, for instance)",
		c.name, c.typ)
}

// cell scans one column of ScanRows, converting as it goes.
type cell struct {
	col  string
	conv convFunc
	v    any
}

func (c *cell) Scan(src any) error {
	if src == nil {
		c.v = nil
		return nil
	}
	v, err := c.conv(src)
	if err != nil {
		return fmt.Errorf("column %q: %w", c.col, err)
	}
	c.v = v
	return nil
}

// convInt reads an integer NUMBER: int64 when it fits, otherwise the exact
// digits (NUMBER(38,0) goes beyond int64).
func convInt(v any) (any, error) {
	switch n := v.(type) {
	case int64:
		return n, nil
	case string:
		if i, err := strconv.ParseInt(n, 10, 64); err == nil {
			return i, nil
		}
		return exactNumber(n)
	}
	return nil, unexpected("NUMBER", v)
}

// convDecimal keeps a NUMBER with a scale (or a DECFLOAT) as the exact text
// Snowflake sent, which has the column's number of fraction digits.
func convDecimal(v any) (any, error) {
	if s, ok := v.(string); ok {
		return exactNumber(s)
	}
	return nil, unexpected("exact NUMBER text", v)
}

func exactNumber(s string) (json.Number, error) {
	// A JSON document starting with a digit or a minus sign is a number.
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) || !json.Valid([]byte(s)) {
		return "", fmt.Errorf("%q is not a number", s)
	}
	return json.Number(s), nil
}

// convReal reads a FLOAT, which JSON results print as text ("inf" and
// "NaN" included).
func convReal(v any) (any, error) {
	switch f := v.(type) {
	case float64:
		return canon.Float(f), nil
	case string:
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a FLOAT", f)
		}
		return canon.Float(x), nil
	}
	return nil, unexpected("FLOAT", v)
}

func convText(v any) (any, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	return nil, unexpected("TEXT", v)
}

// convBool reads a BOOLEAN, which JSON results print as "1" or "0" (the
// driver passes that text through).
func convBool(v any) (any, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch strings.ToLower(b) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
	}
	return nil, unexpected("BOOLEAN", v)
}

func convBinary(v any) (any, error) {
	if b, ok := v.([]byte); ok {
		return canon.Bytes(b), nil
	}
	return nil, unexpected("BINARY", v)
}

// convJSON compacts a document: Snowflake prints VARIANT values indented
// over several lines. Compacting keeps numbers and key order as they are.
func convJSON(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, unexpected("JSON text", v)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return nil, fmt.Errorf("reading JSON document: %w", err)
	}
	return json.RawMessage(b.Bytes()), nil
}

func convTime(format func(time.Time) string) convFunc {
	return func(v any) (any, error) {
		if t, ok := v.(time.Time); ok {
			return format(t), nil
		}
		return nil, unexpected("time", v)
	}
}

func unexpected(want string, v any) error {
	return fmt.Errorf("expected a %s value, got %T", want, v)
}
