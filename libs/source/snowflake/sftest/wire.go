package sftest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	duckdbdriver "github.com/duckdb/duckdb-go/v2"

	"github.com/ebb-etl/ebb/libs/source/internal/canon"
)

// rowType is one column of a response's "rowtype", as Snowflake sends it.
type rowType struct {
	Name       string  `json:"name"`
	Database   string  `json:"database"`
	Schema     string  `json:"schema"`
	Table      string  `json:"table"`
	Type       string  `json:"type"`
	Precision  int     `json:"precision"`
	Scale      int     `json:"scale"`
	Length     int     `json:"length"`
	ByteLength int     `json:"byteLength"`
	Nullable   bool    `json:"nullable"`
	Collation  *string `json:"collation"`
}

// wireColumn is how the server reports and renders one DuckDB column.
type wireColumn struct {
	rowType
	// expr, if set, is what the server selects instead of the column ($
	// stands for it), so the driver hands over text.
	expr   string
	render func(v any) (*string, error)
}

// Sizes Snowflake reports for its largest VARCHAR and BINARY.
const (
	maxText   = 16777216
	maxBinary = 8388608
)

// wireColumnOf maps a DuckDB type to the Snowflake type that holds the same
// values, and the text Snowflake's JSON result format gives them. A DuckDB
// type with no Snowflake counterpart (INTERVAL, BIT, ...) is reported under
// its own name, as a type the client does not know.
func wireColumnOf(name, duckType string) wireColumn {
	c := wireColumn{rowType: rowType{Name: name, Nullable: true}}
	switch {
	case duckType == "BOOLEAN":
		c.Type, c.render = "boolean", renderBool
	case intTypes[duckType]:
		c.Type, c.Precision, c.render = "fixed", 38, renderInt
	case strings.HasPrefix(duckType, "DECIMAL("):
		c.Type, c.render = "fixed", renderDecimal
		_, _ = fmt.Sscanf(duckType, "DECIMAL(%d,%d)", &c.Precision, &c.Scale)
	case duckType == "FLOAT" || duckType == "DOUBLE":
		c.Type, c.render = "real", renderReal
	case duckType == "VARCHAR":
		c.Type, c.Length, c.ByteLength, c.render = "text", maxText, maxText, renderText
	case duckType == "UUID" || strings.HasPrefix(duckType, "ENUM("):
		c.Type, c.Length, c.ByteLength, c.expr, c.render = "text", maxText, maxText, "CAST($ AS VARCHAR)", renderText
	case duckType == "BLOB":
		c.Type, c.Length, c.ByteLength, c.render = "binary", maxBinary, maxBinary, renderBinary
	case duckType == "DATE":
		c.Type, c.render = "date", renderDate
	case duckType == "TIME":
		c.Type, c.Scale, c.render = "time", 9, renderTime
	case strings.HasPrefix(duckType, "TIMESTAMP") && !strings.Contains(duckType, "TZ") && !strings.Contains(duckType, "ZONE"):
		c.Type, c.Scale, c.render = "timestamp_ntz", 9, renderTimestamp("")
	case duckType == "TIMESTAMPTZ" || duckType == "TIMESTAMP WITH TIME ZONE":
		// DuckDB keeps the instant, not its offset: it comes back at UTC,
		// offset 0, which Snowflake writes as 1440 (minutes + 1440).
		c.Type, c.Scale, c.render = "timestamp_tz", 9, renderTimestamp(" 1440")
	case duckType == "JSON":
		c.Type, c.expr, c.render = "variant", "CAST($ AS VARCHAR)", renderJSON
	case strings.HasPrefix(duckType, "STRUCT(") || strings.HasPrefix(duckType, "MAP("):
		c.Type, c.expr, c.render = "object", "CAST(to_json($) AS VARCHAR)", renderJSON
	case strings.HasSuffix(duckType, "]"):
		c.Type, c.expr, c.render = "array", "CAST(to_json($) AS VARCHAR)", renderJSON
	default:
		c.Type, c.expr, c.render = strings.ToLower(duckType), "CAST($ AS VARCHAR)", renderText
	}
	return c
}

var intTypes = map[string]bool{
	"TINYINT": true, "SMALLINT": true, "INTEGER": true, "BIGINT": true, "HUGEINT": true,
	"UTINYINT": true, "USMALLINT": true, "UINTEGER": true, "UBIGINT": true, "UHUGEINT": true,
}

func text(s string) (*string, error) { return &s, nil }

func renderBool(v any) (*string, error) {
	switch b := v.(type) {
	case nil:
		return nil, nil
	case bool:
		if b {
			return text("1")
		}
		return text("0")
	}
	return nil, unexpected("BOOLEAN", v)
}

func renderInt(v any) (*string, error) {
	if v == nil {
		return nil, nil
	}
	return text(fmt.Sprint(v)) // every integer type, *big.Int included, prints its digits
}

// renderDecimal prints a NUMBER with exactly its scale's fraction digits.
func renderDecimal(v any) (*string, error) {
	switch d := v.(type) {
	case nil:
		return nil, nil
	case duckdbdriver.Decimal:
		return text(canon.Decimal(d.Value, int(d.Scale)).String())
	}
	return nil, unexpected("DECIMAL", v)
}

func renderReal(v any) (*string, error) {
	var f float64
	switch x := v.(type) {
	case nil:
		return nil, nil
	case float32:
		f = float64(x)
	case float64:
		f = x
	default:
		return nil, unexpected("FLOAT", v)
	}
	switch {
	case math.IsNaN(f):
		return text("NaN")
	case math.IsInf(f, 1):
		return text("inf")
	case math.IsInf(f, -1):
		return text("-inf")
	}
	return text(strconv.FormatFloat(f, 'g', -1, 64))
}

func renderText(v any) (*string, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case string:
		return text(s)
	}
	return nil, unexpected("VARCHAR", v)
}

// renderBinary prints bytes in hex, Snowflake's BINARY_OUTPUT_FORMAT.
func renderBinary(v any) (*string, error) {
	switch b := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return text(strings.ToUpper(hex.EncodeToString(b)))
	}
	return nil, unexpected("BLOB", v)
}

// renderDate prints days since 1970-01-01.
func renderDate(v any) (*string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case time.Time:
		days := t.Unix() / 86400
		if t.Unix()%86400 < 0 {
			days--
		}
		return text(strconv.FormatInt(days, 10))
	}
	return nil, unexpected("DATE", v)
}

// renderTime prints seconds since midnight with nine fraction digits.
func renderTime(v any) (*string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case time.Time:
		sec := t.Hour()*3600 + t.Minute()*60 + t.Second()
		return text(fmt.Sprintf("%d.%09d", sec, t.Nanosecond()))
	}
	return nil, unexpected("TIME", v)
}

// renderTimestamp prints seconds since the epoch with nine fraction digits
// (the fraction counts forward from the whole second, as the driver reads
// it), then suffix.
func renderTimestamp(suffix string) func(v any) (*string, error) {
	return func(v any) (*string, error) {
		switch t := v.(type) {
		case nil:
			return nil, nil
		case time.Time:
			return text(fmt.Sprintf("%d.%09d%s", t.Unix(), t.Nanosecond(), suffix))
		}
		return nil, unexpected("TIMESTAMP", v)
	}
}

// renderJSON prints a document indented by two spaces, as Snowflake prints
// VARIANT, OBJECT and ARRAY values.
func renderJSON(v any) (*string, error) {
	switch s := v.(type) {
	case nil:
		return nil, nil
	case string:
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(s), "", "  "); err != nil {
			return nil, err
		}
		return text(b.String())
	}
	return nil, unexpected("JSON text", v)
}

func unexpected(want string, v any) error {
	return fmt.Errorf("expected a %s value, got %T", want, v)
}
