package bqtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"
)

// field is a TableFieldSchema of the REST API. Query results carry no
// parameterized types (NUMERIC(20,6) comes back as NUMERIC), as in BigQuery.
type field struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Mode   string   `json:"mode,omitempty"`
	Fields []*field `json:"fields,omitempty"`
}

type schema struct {
	Fields []*field `json:"fields"`
}

// scalarTypes maps DuckDB types to the REST API's (legacy) type names, which
// the client expects in schemas.
var scalarTypes = map[string]string{
	"BOOLEAN":      "BOOLEAN",
	"TINYINT":      "INTEGER",
	"SMALLINT":     "INTEGER",
	"INTEGER":      "INTEGER",
	"BIGINT":       "INTEGER",
	"UTINYINT":     "INTEGER",
	"USMALLINT":    "INTEGER",
	"UINTEGER":     "INTEGER",
	"UBIGINT":      "BIGNUMERIC",
	"HUGEINT":      "BIGNUMERIC",
	"FLOAT":        "FLOAT",
	"DOUBLE":       "FLOAT",
	"VARCHAR":      "STRING",
	"UUID":         "STRING",
	"BLOB":         "BYTES",
	"DATE":         "DATE",
	"TIME":         "TIME",
	"TIMESTAMP":    "DATETIME",
	"TIMESTAMP_S":  "DATETIME",
	"TIMESTAMP_MS": "DATETIME",
	"TIMESTAMP_NS": "DATETIME",
	"TIMESTAMPTZ":  "TIMESTAMP",
	"JSON":         "JSON",
	"INTERVAL":     "INTERVAL",
}

// fieldOf maps a DuckDB column type, as database/sql names it, to a
// BigQuery field. Lists become REPEATED fields; BigQuery has no arrays of
// arrays, so a nested list is refused as BigQuery refuses it.
func fieldOf(name, typ string) (*field, error) {
	typ = strings.TrimSpace(typ)
	switch {
	case strings.HasSuffix(typ, "]"):
		f, err := fieldOf(name, typ[:strings.LastIndex(typ, "[")])
		if err != nil {
			return nil, err
		}
		if f.Mode == "REPEATED" {
			return nil, fmt.Errorf("Cannot construct array with element type ARRAY because nested arrays are not supported (column %s)", name)
		}
		f.Mode = "REPEATED"
		return f, nil
	case strings.HasPrefix(typ, "STRUCT(") && strings.HasSuffix(typ, ")"):
		f := &field{Name: name, Type: "RECORD", Mode: "NULLABLE"}
		for _, part := range splitTop(typ[len("STRUCT(") : len(typ)-1]) {
			sub, subType := splitName(part)
			sf, err := fieldOf(sub, subType)
			if err != nil {
				return nil, err
			}
			f.Fields = append(f.Fields, sf)
		}
		return f, nil
	case strings.HasPrefix(typ, "DECIMAL("):
		var p, s int
		if _, err := fmt.Sscanf(typ, "DECIMAL(%d,%d)", &p, &s); err != nil {
			return nil, fmt.Errorf("reading type %s: %v", typ, err)
		}
		t := "NUMERIC"
		if s > 9 || p-s > 29 {
			t = "BIGNUMERIC"
		}
		return &field{Name: name, Type: t, Mode: "NULLABLE"}, nil
	case typ == "ENUM" || strings.HasPrefix(typ, "ENUM("): // the driver names no values
		return &field{Name: name, Type: "STRING", Mode: "NULLABLE"}, nil
	}
	t, ok := scalarTypes[typ]
	if !ok {
		return nil, fmt.Errorf("column %s has DuckDB type %s, which has no BigQuery equivalent in this server", name, typ)
	}
	return &field{Name: name, Type: t, Mode: "NULLABLE"}, nil
}

// splitTop splits a STRUCT's member list at top-level commas.
func splitTop(s string) []string {
	var parts []string
	depth, start, quoted := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// splitName splits a STRUCT member "name TYPE", the name maybe quoted.
func splitName(s string) (string, string) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		for i := 1; i < len(s); i++ {
			if s[i] == '"' {
				if i+1 < len(s) && s[i+1] == '"' {
					i++
					continue
				}
				return strings.ReplaceAll(s[1:i], `""`, `"`), s[i+1:]
			}
		}
	}
	name, typ, _ := strings.Cut(s, " ")
	return name, typ
}

// encodeCell renders one value as the REST API's "v" of a cell: every
// scalar a string, RECORD {"f":[cells]}, REPEATED [cells]. A NULL array is
// an empty one, and an array may not hold NULL, as in BigQuery.
func encodeCell(v any, f *field, int64Timestamps bool) (any, error) {
	if f.Mode != "REPEATED" {
		return encodeValue(v, f, int64Timestamps)
	}
	cells := []any{}
	if v == nil {
		return cells, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("field %s: expected a list, got %T", f.Name, v)
	}
	for _, e := range list {
		if e == nil {
			return nil, fmt.Errorf("Array cannot have a null element; error in writing field %s", f.Name)
		}
		ev, err := encodeValue(e, f, int64Timestamps)
		if err != nil {
			return nil, err
		}
		cells = append(cells, map[string]any{"v": ev})
	}
	return cells, nil
}

func encodeValue(v any, f *field, int64Timestamps bool) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch f.Type {
	case "RECORD":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("field %s: expected a struct, got %T", f.Name, v)
		}
		cells := make([]any, len(f.Fields))
		for i, sf := range f.Fields {
			c, err := encodeCell(m[sf.Name], sf, int64Timestamps)
			if err != nil {
				return nil, err
			}
			cells[i] = map[string]any{"v": c}
		}
		return map[string]any{"f": cells}, nil
	case "TIMESTAMP":
		t, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("field %s: expected a time, got %T", f.Name, v)
		}
		if int64Timestamps {
			return strconv.FormatInt(t.UnixMicro(), 10), nil
		}
		return floatSeconds(t), nil
	}
	return encodeScalar(v, f)
}

// encodeScalar renders the scalar types as BigQuery sends them.
func encodeScalar(v any, f *field) (any, error) {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x), nil
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), nil
	case *big.Int:
		return x.String(), nil
	case float32:
		return formatFloat(float64(x)), nil
	case float64:
		return formatFloat(x), nil
	case duckdbdriver.Decimal:
		return decimalString(x.Value, int(x.Scale)), nil
	case string:
		return x, nil
	case []byte:
		if f.Type == "STRING" && len(x) == 16 { // UUID
			return formatUUID(x), nil
		}
		return base64.StdEncoding.EncodeToString(x), nil
	case duckdbdriver.UUID:
		return formatUUID(x[:]), nil
	case *duckdbdriver.UUID:
		return formatUUID(x[:]), nil
	case duckdbdriver.Interval:
		return formatInterval(x), nil
	case time.Time:
		switch f.Type {
		case "DATE":
			return x.Format("2006-01-02"), nil
		case "TIME":
			return x.Format("15:04:05.999999"), nil
		default: // DATETIME
			return x.Format("2006-01-02T15:04:05.999999"), nil
		}
	}
	if f.Type == "JSON" {
		// The driver decodes JSON documents; send them back as text.
		b, err := json.Marshal(v)
		return string(b), err
	}
	return nil, fmt.Errorf("field %s: no encoding for %T", f.Name, v)
}

// formatFloat writes FLOAT64 values the way BigQuery does, including its
// names for NaN and the infinities.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// floatSeconds is the legacy TIMESTAMP form, seconds since the epoch in
// scientific notation ("1.709289296789012E9"), for clients that do not ask
// for int64 timestamps.
func floatSeconds(t time.Time) string {
	s := strconv.FormatFloat(float64(t.UnixMicro())/1e6, 'E', -1, 64)
	mant, exp, _ := strings.Cut(s, "E")
	n, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(n)
}

// decimalString renders unscaled × 10^-scale with no trailing fraction
// zeros: BigQuery does not keep a NUMERIC's declared scale in query results.
func decimalString(unscaled *big.Int, scale int) string {
	digits := new(big.Int).Abs(unscaled).String()
	sign := ""
	if unscaled.Sign() < 0 {
		sign = "-"
	}
	if scale <= 0 {
		return sign + digits + strings.Repeat("0", -scale)
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-scale], strings.TrimRight(digits[len(digits)-scale:], "0")
	if frac == "" {
		if whole == "0" {
			sign = ""
		}
		return sign + whole
	}
	return sign + whole + "." + frac
}

func formatUUID(b []byte) string {
	h := fmt.Sprintf("%x", b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// formatInterval writes BigQuery's canonical INTERVAL form "Y-M D H:M:S[.F]".
func formatInterval(iv duckdbdriver.Interval) string {
	sign := func(n int64) string {
		if n < 0 {
			return "-"
		}
		return ""
	}
	abs := func(n int64) int64 { return max(n, -n) }
	months := int64(iv.Months)
	us := iv.Micros
	s := fmt.Sprintf("%s%d-%d %d %s%d:%d:%d", sign(months), abs(months)/12, abs(months)%12, iv.Days,
		sign(us), abs(us)/3600e6, abs(us)/60e6%60, abs(us)/1e6%60)
	if frac := abs(us) % 1e6; frac != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
	}
	return s
}
