package postgres

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ebb-etl/ebb/libs/source/internal/canon"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// textDecoders read the portable dialect's text results into the same
// canonical values the binary decoders give. The session runs with
// timezone UTC and datestyle ISO (Dialect.Params), which fixes these forms.
var textDecoders = map[uint32]decodeFunc{
	pgtype.BoolOID:        textBool,
	pgtype.Int2OID:        textInt,
	pgtype.Int4OID:        textInt,
	pgtype.Int8OID:        textInt,
	pgtype.Float4OID:      textFloat4,
	pgtype.Float8OID:      textFloat,
	pgtype.NumericOID:     textNumeric,
	pgtype.JSONOID:        textJSON,
	pgtype.JSONBOID:       textJSON,
	redshiftSuperOID:      textJSON,
	pgtype.TimestamptzOID: textTimestamptz,
	pgtype.TimestampOID:   textTimestamp,
	pgtype.DateOID:        textDate,
	pgtype.ByteaOID:       textBytes,
	redshiftVarbyteOID:    textBytes,
}

// textColumnsOf picks a text decoder for each model column; types without
// one (VARCHAR, CHAR, TIME, intervals, geometry) are read as strings.
func textColumnsOf(fields []pgconn.FieldDescription) ([]column, error) {
	cols := make([]column, len(fields))
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
		cols[i] = column{name: f.Name, format: pgx.TextFormatCode, decode: decodeText}
		if d, ok := textDecoders[f.DataTypeOID]; ok {
			cols[i].decode = d
		}
	}
	return cols, query.Unique(names)
}

func textBool(src []byte) (any, error) {
	switch string(src) {
	case "t", "true":
		return true, nil
	case "f", "false":
		return false, nil
	}
	return nil, fmt.Errorf("boolean %q", src)
}

func textInt(src []byte) (any, error) { return strconv.ParseInt(string(src), 10, 64) }

// textFloat4 widens a REAL as the binary decoder does, so 0.1 reads as
// float64(float32(0.1)) from either path.
func textFloat4(src []byte) (any, error) {
	f, err := strconv.ParseFloat(string(src), 32)
	if err != nil {
		return nil, fmt.Errorf("real %q", src)
	}
	return canon.Float(float64(float32(f))), nil
}

func textFloat(src []byte) (any, error) {
	f, err := strconv.ParseFloat(string(src), 64)
	if err != nil {
		return nil, fmt.Errorf("float %q", src)
	}
	return canon.Float(f), nil
}

// textNumeric keeps the server's digits: its text form is exact.
func textNumeric(src []byte) (any, error) {
	switch s := string(src); s {
	case "NaN", "Infinity", "-Infinity":
		return s, nil
	default:
		return json.Number(s), nil
	}
}

// textJSON returns JSON text as it is; SUPER's text form is JSON too.
func textJSON(src []byte) (any, error) {
	if !json.Valid(src) {
		return nil, fmt.Errorf("invalid JSON %q", src)
	}
	return json.RawMessage(bytes.Clone(src)), nil
}

// Text layouts of datestyle ISO: the zone is "+00" (or "+05:30") in UTC
// sessions, and the fraction has up to 6 digits.
const (
	textTimestampTZLayout = "2006-01-02 15:04:05.999999Z07:00"
	textTimestampLayout   = "2006-01-02 15:04:05.999999"
)

func textTimestamptz(src []byte) (any, error) {
	s := string(src)
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	// Go's layouts want the zone's minutes, which ISO leaves out when zero.
	if n := len(s); n > 3 && (s[n-3] == '+' || s[n-3] == '-') {
		s += ":00"
	}
	t, err := time.Parse(textTimestampTZLayout, s)
	if err != nil {
		return nil, fmt.Errorf("timestamptz %q: %w", src, err)
	}
	return canon.TimestampTZ(t), nil
}

func textTimestamp(src []byte) (any, error) {
	s := string(src)
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	t, err := time.Parse(textTimestampLayout, s)
	if err != nil {
		return nil, fmt.Errorf("timestamp %q: %w", src, err)
	}
	return canon.Timestamp(t), nil
}

func textDate(src []byte) (any, error) {
	s := string(src)
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	t, err := time.Parse(canon.DateLayout, s)
	if err != nil {
		return nil, fmt.Errorf("date %q: %w", src, err)
	}
	return canon.Date(t), nil
}

// textBytes reads hex: Postgres's bytea prints as \x0aff, Redshift's
// VARBYTE as 0aff.
func textBytes(src []byte) (any, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(string(src), `\x`))
	if err != nil {
		return nil, fmt.Errorf("binary value: %w", err)
	}
	return canon.Bytes(b), nil
}
