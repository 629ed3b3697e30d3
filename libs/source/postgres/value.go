package postgres

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ebb-etl/ebb/libs/source/internal/canon"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// decodeFunc turns one non-NULL column value, as sent by the server, into
// its canonical form. src is reused for the next row, so results must not
// alias it.
type decodeFunc func(src []byte) (any, error)

// column is a model column and how ScanRows reads it.
type column struct {
	name   string
	format int16
	decode decodeFunc
}

// binaryDecoders read the types with a canonical form other than their text
// form, from the binary format, which needs no parsing and does not depend
// on session settings. Every other type is read in text format as a string.
var binaryDecoders = map[uint32]decodeFunc{
	pgtype.BoolOID:        decodeBool,
	pgtype.Int2OID:        decodeInt,
	pgtype.Int4OID:        decodeInt,
	pgtype.Int8OID:        decodeInt,
	pgtype.Float4OID:      decodeFloat,
	pgtype.Float8OID:      decodeFloat,
	pgtype.NumericOID:     decodeNumeric,
	pgtype.TextOID:        decodeText,
	pgtype.VarcharOID:     decodeText,
	pgtype.BPCharOID:      decodeText,
	pgtype.NameOID:        decodeText,
	pgtype.JSONOID:        decodeJSON,
	pgtype.JSONBOID:       decodeJSONB,
	pgtype.TimestamptzOID: decodeTimestamptz,
	pgtype.TimestampOID:   decodeTimestamp,
	pgtype.DateOID:        decodeDate,
	pgtype.ByteaOID:       decodeBytea,
	pgtype.UUIDOID:        decodeUUID,
}

// columnsOf picks a format and a decoder for each model column. Arrays of
// the types above are read in binary too, element by element; other arrays
// come back in their text form.
func columnsOf(types *pgtype.Map, fields []pgconn.FieldDescription) ([]column, error) {
	cols := make([]column, len(fields))
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
		cols[i] = column{name: f.Name, format: pgx.TextFormatCode, decode: decodeText}
		if d, ok := binaryDecoders[f.DataTypeOID]; ok {
			cols[i].format, cols[i].decode = pgx.BinaryFormatCode, d
			continue
		}
		if t, ok := types.TypeForOID(f.DataTypeOID); ok {
			if ac, ok := t.Codec.(*pgtype.ArrayCodec); ok {
				if d, ok := binaryDecoders[ac.ElementType.OID]; ok {
					cols[i].format, cols[i].decode = pgx.BinaryFormatCode, decodeArray(d)
				}
			}
		}
	}
	return cols, query.Unique(names)
}

// decodeRow builds the canonical row from the model's raw columns.
func decodeRow(cols []column, raw [][]byte) (map[string]any, error) {
	row := make(map[string]any, len(cols))
	for i, c := range cols {
		if raw[i] == nil {
			row[c.name] = nil
			continue
		}
		v, err := c.decode(raw[i])
		if err != nil {
			return nil, fmt.Errorf("decoding column %q: %w", c.name, err)
		}
		row[c.name] = v
	}
	return row, nil
}

func decodeText(src []byte) (any, error) { return string(src), nil }

func decodeBool(src []byte) (any, error) {
	if len(src) != 1 {
		return nil, fmt.Errorf("bool of %d bytes", len(src))
	}
	return src[0] != 0, nil
}

func decodeInt(src []byte) (any, error) { return binaryInt(src) }

// binaryInt reads an int2, int4 or int8 by its length.
func binaryInt(src []byte) (int64, error) {
	switch len(src) {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(src))), nil
	case 4:
		return int64(int32(binary.BigEndian.Uint32(src))), nil
	case 8:
		return int64(binary.BigEndian.Uint64(src)), nil
	}
	return 0, fmt.Errorf("integer of %d bytes", len(src))
}

func decodeFloat(src []byte) (any, error) {
	switch len(src) {
	case 4:
		return canon.Float(float64(math.Float32frombits(binary.BigEndian.Uint32(src)))), nil
	case 8:
		return canon.Float(math.Float64frombits(binary.BigEndian.Uint64(src))), nil
	}
	return nil, fmt.Errorf("float of %d bytes", len(src))
}

// Sign words of the binary numeric format.
const (
	numericPos    = 0x0000
	numericNeg    = 0x4000
	numericNaN    = 0xC000
	numericPosInf = 0xD000
	numericNegInf = 0xF000
)

// decodeNumeric renders a binary numeric exactly as Postgres prints it: the
// value is digits in base 10000, the first one weighted 10000^weight, shown
// with dscale fraction digits. NaN and the infinities, which are not JSON
// numbers, come back as strings.
func decodeNumeric(src []byte) (any, error) {
	if len(src) < 8 {
		return nil, errors.New("numeric header truncated")
	}
	ndigits := int(binary.BigEndian.Uint16(src[0:]))
	weight := int(int16(binary.BigEndian.Uint16(src[2:])))
	sign := binary.BigEndian.Uint16(src[4:])
	dscale := int(binary.BigEndian.Uint16(src[6:]))
	switch sign {
	case numericNaN:
		return "NaN", nil
	case numericPosInf:
		return "Infinity", nil
	case numericNegInf:
		return "-Infinity", nil
	case numericPos, numericNeg:
	default:
		return nil, fmt.Errorf("numeric sign 0x%04x", sign)
	}
	if len(src) != 8+2*ndigits {
		return nil, fmt.Errorf("numeric of %d digits in %d bytes", ndigits, len(src))
	}
	digit := func(i int) int {
		if i < 0 || i >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(src[8+2*i:]))
	}
	buf := make([]byte, 0, 4*(max(weight, 0)+1)+dscale+2)
	if sign == numericNeg {
		buf = append(buf, '-')
	}
	if weight < 0 {
		buf = append(buf, '0')
	}
	for i := 0; i <= weight; i++ {
		if i == 0 {
			buf = strconv.AppendInt(buf, int64(digit(i)), 10)
			continue
		}
		buf = appendDigits(buf, digit(i), 4)
	}
	if dscale > 0 {
		buf = append(buf, '.')
		for i, n := weight+1, 0; n < dscale; i, n = i+1, n+4 {
			buf = appendDigits(buf, digit(i), min(4, dscale-n))
		}
	}
	return json.Number(buf), nil
}

// appendDigits appends the first n of the 4 decimal digits of d.
func appendDigits(buf []byte, d, n int) []byte {
	var s [4]byte
	for j := 3; j >= 0; j-- {
		s[j] = byte('0' + d%10)
		d /= 10
	}
	return append(buf, s[:n]...)
}

func decodeJSON(src []byte) (any, error) { return json.RawMessage(bytes.Clone(src)), nil }

// decodeJSONB strips the version byte that starts binary jsonb.
func decodeJSONB(src []byte) (any, error) {
	if len(src) == 0 || src[0] != 1 {
		return nil, errors.New("unknown jsonb version")
	}
	return decodeJSON(src[1:])
}

// Postgres counts timestamps in microseconds and dates in days from
// 2000-01-01; the extreme values stand for infinity.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func microsToTime(src []byte) (time.Time, string, error) {
	if len(src) != 8 {
		return time.Time{}, "", fmt.Errorf("timestamp of %d bytes", len(src))
	}
	us := int64(binary.BigEndian.Uint64(src))
	switch us {
	case math.MaxInt64:
		return time.Time{}, "infinity", nil
	case math.MinInt64:
		return time.Time{}, "-infinity", nil
	}
	return time.UnixMicro(pgEpoch.UnixMicro() + us).UTC(), "", nil
}

func decodeTimestamptz(src []byte) (any, error) {
	t, inf, err := microsToTime(src)
	if err != nil || inf != "" {
		return inf, err
	}
	return canon.TimestampTZ(t), nil
}

func decodeTimestamp(src []byte) (any, error) {
	t, inf, err := microsToTime(src)
	if err != nil || inf != "" {
		return inf, err
	}
	return canon.Timestamp(t), nil
}

func decodeDate(src []byte) (any, error) {
	if len(src) != 4 {
		return nil, fmt.Errorf("date of %d bytes", len(src))
	}
	switch days := int32(binary.BigEndian.Uint32(src)); days {
	case math.MaxInt32:
		return "infinity", nil
	case math.MinInt32:
		return "-infinity", nil
	default:
		return canon.Date(pgEpoch.AddDate(0, 0, int(days))), nil
	}
}

func decodeBytea(src []byte) (any, error) { return canon.Bytes(src), nil }

func decodeUUID(src []byte) (any, error) {
	if len(src) != 16 {
		return nil, fmt.Errorf("uuid of %d bytes", len(src))
	}
	return canon.UUID(src), nil
}

// decodeArray reads a binary array of elements decoded by elem: a header
// (dimensions, flags, element type), each dimension's length and lower
// bound, then each element as a length (-1 for NULL) and its bytes.
// Multidimensional arrays become nested slices.
func decodeArray(elem decodeFunc) decodeFunc {
	return func(src []byte) (any, error) {
		if len(src) < 12 {
			return nil, errors.New("array header truncated")
		}
		ndim := int(int32(binary.BigEndian.Uint32(src)))
		if ndim == 0 {
			return []any{}, nil
		}
		p := 12
		if ndim < 0 || len(src) < p+8*ndim {
			return nil, errors.New("array dimensions truncated")
		}
		dims := make([]int, ndim)
		for i := range dims {
			dims[i] = int(int32(binary.BigEndian.Uint32(src[p:])))
			p += 8
		}
		r := arrayReader{src: src, pos: p, elem: elem}
		return r.read(dims)
	}
}

type arrayReader struct {
	src  []byte
	pos  int
	elem decodeFunc
}

func (r *arrayReader) read(dims []int) ([]any, error) {
	if dims[0] < 0 {
		return nil, errors.New("negative array length")
	}
	out := make([]any, dims[0])
	for i := range out {
		if len(dims) > 1 {
			v, err := r.read(dims[1:])
			if err != nil {
				return nil, err
			}
			out[i] = v
			continue
		}
		if r.pos+4 > len(r.src) {
			return nil, errors.New("array element truncated")
		}
		n := int(int32(binary.BigEndian.Uint32(r.src[r.pos:])))
		r.pos += 4
		if n < 0 {
			continue // NULL element
		}
		if r.pos+n > len(r.src) {
			return nil, errors.New("array element truncated")
		}
		v, err := r.elem(r.src[r.pos : r.pos+n])
		if err != nil {
			return nil, err
		}
		r.pos += n
		out[i] = v
	}
	return out, nil
}
