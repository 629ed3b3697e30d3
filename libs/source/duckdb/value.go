package duckdb

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/ebb-etl/ebb/libs/source/internal/canon"
)

// convFunc turns a non-NULL value from the driver into its canonical form.
type convFunc func(v any) (any, error)

// cell scans one column of ScanRows, converting as it goes.
type cell struct {
	conv convFunc
	v    any
}

func (c *cell) Scan(src any) error {
	if src == nil {
		c.v = nil
		return nil
	}
	v, err := c.conv(src)
	c.v = v
	return err
}

// colPlan says how ScanRows selects a column and converts its values.
type colPlan struct {
	// expr wraps the column reference; nil selects the column as it is.
	expr func(col string) string
	conv convFunc
}

// nativeConvs convert the types the driver returns in a usable Go form.
var nativeConvs = map[string]convFunc{
	"BOOLEAN":      convBool,
	"TINYINT":      convInt,
	"SMALLINT":     convInt,
	"INTEGER":      convInt,
	"BIGINT":       convInt,
	"UTINYINT":     convInt,
	"USMALLINT":    convInt,
	"UINTEGER":     convInt,
	"UBIGINT":      convBig,
	"HUGEINT":      convBig,
	"UHUGEINT":     convBig,
	"FLOAT":        convFloat,
	"DOUBLE":       convFloat,
	"VARCHAR":      convString,
	"BLOB":         convBlob,
	"DATE":         convTime(canon.Date),
	"TIMESTAMP":    convTime(canon.Timestamp),
	"TIMESTAMP_S":  convTime(canon.Timestamp),
	"TIMESTAMP_MS": convTime(canon.Timestamp),
	"TIMESTAMP_NS": convTime(canon.Timestamp),
	"TIMESTAMPTZ":  convTime(canon.TimestampTZ),
}

// plan picks how to read a column of the given type: types in nativeConvs
// (and decimals, enums, lists of them) as they are; JSON as its text;
// structs, maps and unions as JSON documents; anything else in its text
// form.
func plan(typ string) colPlan {
	if c, ok := nativeConvs[typ]; ok {
		return colPlan{conv: c}
	}
	switch {
	case strings.HasSuffix(typ, "]"): // first: "DECIMAL(10,2)[]" is a list
		return planList(typ)
	case typ == "JSON":
		return colPlan{castTo("VARCHAR"), convJSON}
	case strings.HasPrefix(typ, "DECIMAL("):
		return colPlan{conv: convDecimal}
	case strings.HasPrefix(typ, "ENUM("):
		return colPlan{conv: convString}
	case strings.HasPrefix(typ, "STRUCT("), strings.HasPrefix(typ, "MAP("), strings.HasPrefix(typ, "UNION("):
		return colPlan{func(col string) string { return "CAST(to_json(" + col + ") AS VARCHAR)" }, convJSON}
	}
	return colPlan{castTo("VARCHAR"), convString}
}

// planList handles LIST ("T[]") and ARRAY ("T[n]") types, nested or not:
// elements the driver returns natively are converted one by one; other
// element types are read as text. VARCHAR elements are cast too: the driver
// names JSON[] "VARCHAR[]" but decodes its elements, and the cast is a no-op
// for real text.
func planList(typ string) colPlan {
	elem, depth := typ, 0
	for strings.HasSuffix(elem, "]") {
		elem, depth = elem[:strings.LastIndex(elem, "[")], depth+1
	}
	p := plan(elem)
	if p.expr != nil || elem == "VARCHAR" {
		p = colPlan{castTo("VARCHAR" + strings.Repeat("[]", depth)), convString}
	}
	for range depth {
		p.conv = convList(p.conv)
	}
	return p
}

func castTo(typ string) func(string) string {
	return func(col string) string { return "CAST(" + col + " AS " + typ + ")" }
}

func convBool(v any) (any, error) {
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return nil, unexpected("BOOLEAN", v)
}

func convInt(v any) (any, error) {
	switch n := v.(type) {
	case int8:
		return int64(n), nil
	case int16:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	case uint8:
		return int64(n), nil
	case uint16:
		return int64(n), nil
	case uint32:
		return int64(n), nil
	}
	return nil, unexpected("integer", v)
}

// convBig renders integers that may not fit int64 as exact numbers.
func convBig(v any) (any, error) {
	switch n := v.(type) {
	case uint64:
		return json.Number(strconv.FormatUint(n, 10)), nil
	case *big.Int:
		return json.Number(n.String()), nil
	}
	return nil, unexpected("big integer", v)
}

func convFloat(v any) (any, error) {
	switch f := v.(type) {
	case float32:
		return canon.Float(float64(f)), nil
	case float64:
		return canon.Float(f), nil
	}
	return nil, unexpected("float", v)
}

func convDecimal(v any) (any, error) {
	d, ok := v.(duckdbdriver.Decimal)
	if !ok {
		return nil, unexpected("DECIMAL", v)
	}
	return canon.Decimal(d.Value, int(d.Scale)), nil
}

func convString(v any) (any, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	return nil, unexpected("VARCHAR", v)
}

func convJSON(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, unexpected("JSON text", v)
	}
	return json.RawMessage(s), nil
}

func convBlob(v any) (any, error) {
	if b, ok := v.([]byte); ok {
		return canon.Bytes(b), nil
	}
	return nil, unexpected("BLOB", v)
}

func convTime(format func(time.Time) string) convFunc {
	return func(v any) (any, error) {
		if t, ok := v.(time.Time); ok {
			return format(t), nil
		}
		return nil, unexpected("time", v)
	}
}

func convList(elem convFunc) convFunc {
	return func(v any) (any, error) {
		list, ok := v.([]any)
		if !ok {
			return nil, unexpected("list", v)
		}
		out := make([]any, len(list))
		for i, e := range list {
			if e == nil {
				continue
			}
			c, err := elem(e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	}
}

func unexpected(want string, v any) error {
	return fmt.Errorf("expected a %s value, got %T", want, v)
}
