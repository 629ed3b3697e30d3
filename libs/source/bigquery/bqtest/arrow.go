package bqtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/decimal256"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	duckdbdriver "github.com/duckdb/duckdb-go/v2"
)

// The Storage Read API's Arrow forms, as BigQuery documents them for each
// column type: INT64 int64, FLOAT64 float64, NUMERIC decimal128(38, 9),
// BIGNUMERIC decimal256(76, 38), STRING utf8, BYTES binary, BOOL bool, DATE
// date32, TIMESTAMP timestamp[us, tz=UTC], DATETIME timestamp[us] (no zone),
// TIME time64[us], JSON and GEOGRAPHY utf8 with the extension names
// google:sqlType:json and google:sqlType:geography, INTERVAL
// month_day_nano_interval, STRUCT struct, ARRAY list. Arrays are never
// NULL (a NULL array reads as an empty one) and hold no NULLs, as in BigQuery.
// The client uses the Go module github.com/apache/arrow/go/v15, and so does
// the server.

func arrowSchema(fields []*field) (*arrow.Schema, error) {
	out := make([]arrow.Field, len(fields))
	for i, f := range fields {
		af, err := arrowField(f)
		if err != nil {
			return nil, err
		}
		out[i] = af
	}
	return arrow.NewSchema(out, nil), nil
}

func arrowField(f *field) (arrow.Field, error) {
	t, err := arrowType(f)
	if err != nil {
		return arrow.Field{}, err
	}
	if f.Mode == "REPEATED" {
		t = arrow.ListOf(t)
	}
	af := arrow.Field{Name: f.Name, Type: t, Nullable: f.Mode != "REQUIRED"}
	switch f.Type {
	case "JSON":
		af.Metadata = arrow.NewMetadata([]string{"ARROW:extension:name"}, []string{"google:sqlType:json"})
	case "GEOGRAPHY":
		af.Metadata = arrow.NewMetadata([]string{"ARROW:extension:name"}, []string{"google:sqlType:geography"})
	}
	return af, nil
}

func arrowType(f *field) (arrow.DataType, error) {
	switch f.Type {
	case "INTEGER":
		return arrow.PrimitiveTypes.Int64, nil
	case "FLOAT":
		return arrow.PrimitiveTypes.Float64, nil
	case "NUMERIC":
		return &arrow.Decimal128Type{Precision: 38, Scale: 9}, nil
	case "BIGNUMERIC":
		return &arrow.Decimal256Type{Precision: 76, Scale: 38}, nil
	case "STRING", "JSON", "GEOGRAPHY":
		return arrow.BinaryTypes.String, nil
	case "BYTES":
		return arrow.BinaryTypes.Binary, nil
	case "BOOLEAN":
		return arrow.FixedWidthTypes.Boolean, nil
	case "DATE":
		return arrow.FixedWidthTypes.Date32, nil
	case "TIMESTAMP":
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, nil
	case "DATETIME":
		return &arrow.TimestampType{Unit: arrow.Microsecond}, nil
	case "TIME":
		return arrow.FixedWidthTypes.Time64us, nil
	case "INTERVAL":
		return arrow.FixedWidthTypes.MonthDayNanoInterval, nil
	case "RECORD":
		subs := make([]arrow.Field, len(f.Fields))
		for i, sf := range f.Fields {
			af, err := arrowField(sf)
			if err != nil {
				return nil, err
			}
			subs[i] = af
		}
		return arrow.StructOf(subs...), nil
	}
	return nil, fmt.Errorf("column %s has type %s, which this server cannot send as Arrow", f.Name, f.Type)
}

// appendArrow appends a value as the database driver scans it.
func appendArrow(b array.Builder, f *field, v any) error {
	if f.Mode != "REPEATED" {
		return appendValue(b, f, v)
	}
	lb := b.(*array.ListBuilder)
	lb.Append(true)
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("field %s: expected a list, got %T", f.Name, v)
	}
	for _, e := range list {
		if e == nil {
			return fmt.Errorf("Array cannot have a null element; error in writing field %s", f.Name)
		}
		if err := appendValue(lb.ValueBuilder(), f, e); err != nil {
			return err
		}
	}
	return nil
}

// appendValue appends one value, not a list.
func appendValue(b array.Builder, f *field, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	if f.Type == "RECORD" {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("field %s: expected a struct, got %T", f.Name, v)
		}
		sb := b.(*array.StructBuilder)
		sb.Append(true)
		for i, sf := range f.Fields {
			if err := appendArrow(sb.FieldBuilder(i), sf, m[sf.Name]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := appendScalar(b, f, v); err != nil {
		return fmt.Errorf("field %s: %w", f.Name, err)
	}
	return nil
}

func appendScalar(b array.Builder, f *field, v any) error {
	switch b := b.(type) {
	case *array.Int64Builder:
		n, ok := toInt64(v)
		if !ok {
			return unexpectedValue(v)
		}
		b.Append(n)
	case *array.Float64Builder:
		switch x := v.(type) {
		case float64:
			b.Append(x)
		case float32:
			b.Append(float64(x))
		default:
			return unexpectedValue(v)
		}
	case *array.Decimal128Builder:
		n, err := scaled(v, 9)
		if err != nil {
			return err
		}
		b.Append(decimal128.FromBigInt(n))
	case *array.Decimal256Builder:
		n, err := scaled(v, 38)
		if err != nil {
			return err
		}
		b.Append(decimal256.FromBigInt(n))
	case *array.StringBuilder:
		s, err := stringValue(v, f)
		if err != nil {
			return err
		}
		b.Append(s)
	case *array.BinaryBuilder:
		x, ok := v.([]byte)
		if !ok {
			return unexpectedValue(v)
		}
		b.Append(x)
	case *array.BooleanBuilder:
		x, ok := v.(bool)
		if !ok {
			return unexpectedValue(v)
		}
		b.Append(x)
	default:
		return appendTemporal(b, v)
	}
	return nil
}

// appendTemporal appends the types the driver scans as time.Time, and
// intervals.
func appendTemporal(b array.Builder, v any) error {
	if iv, ok := v.(duckdbdriver.Interval); ok {
		ib, ok := b.(*array.MonthDayNanoIntervalBuilder)
		if !ok {
			return unexpectedValue(v)
		}
		ib.Append(arrow.MonthDayNanoInterval{Months: iv.Months, Days: iv.Days, Nanoseconds: iv.Micros * 1000})
		return nil
	}
	t, ok := v.(time.Time)
	if !ok {
		return unexpectedValue(v)
	}
	switch b := b.(type) {
	case *array.Date32Builder:
		b.Append(arrow.Date32FromTime(t))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(t.UnixMicro()))
	case *array.Time64Builder:
		h, m, s := t.Clock()
		micros := (int64(h)*3600+int64(m)*60+int64(s))*1e6 + int64(t.Nanosecond()/1000)
		b.Append(arrow.Time64(micros))
	default:
		return unexpectedValue(v)
	}
	return nil
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

// scaled is a decimal's unscaled value at the given scale: DuckDB's
// DECIMAL, HUGEINT (*big.Int) and UBIGINT (uint64) all fit BigQuery's
// NUMERIC or BIGNUMERIC scale without loss (see fieldOf).
func scaled(v any, scale int) (*big.Int, error) {
	var n *big.Int
	from := 0
	switch x := v.(type) {
	case duckdbdriver.Decimal:
		n, from = new(big.Int).Set(x.Value), int(x.Scale)
	case *big.Int:
		n = new(big.Int).Set(x)
	case uint64:
		n = new(big.Int).SetUint64(x)
	default:
		return nil, unexpectedValue(v)
	}
	if from > scale {
		return nil, fmt.Errorf("a decimal of scale %d does not fit scale %d", from, scale)
	}
	return n.Mul(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale-from)), nil)), nil
}

// stringValue is the text of STRING (UUID and ENUM included) and JSON
// values; JSON inside structs and arrays comes decoded from the driver.
func stringValue(v any, f *field) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		if len(x) == 16 {
			return formatUUID(x), nil
		}
	case duckdbdriver.UUID:
		return formatUUID(x[:]), nil
	case *duckdbdriver.UUID:
		return formatUUID(x[:]), nil
	}
	if f.Type == "JSON" {
		b, err := json.Marshal(v)
		return string(b), err
	}
	return "", unexpectedValue(v)
}

func unexpectedValue(v any) error { return fmt.Errorf("no Arrow form for a %T", v) }

// ipcEncoder serializes a schema and record batches as the Storage Read API
// sends them: each an encapsulated Arrow IPC message, the schema in the
// ReadSession, the batches in ReadRowsResponses. Read one after the other,
// they are an IPC stream, as the client reads them.
type ipcEncoder struct {
	buf    bytes.Buffer
	w      *ipc.Writer
	schema []byte
	skip   int // leading bytes of the output that are the schema message
}

func newIPCEncoder(schema *arrow.Schema) (*ipcEncoder, error) {
	// A stream of no batches is the schema message and the 8 bytes of the
	// end-of-stream marker.
	var sb bytes.Buffer
	if err := ipc.NewWriter(&sb, ipc.WithSchema(schema)).Close(); err != nil {
		return nil, err
	}
	if sb.Len() < 8 {
		return nil, fmt.Errorf("serializing the Arrow schema: %d bytes", sb.Len())
	}
	e := &ipcEncoder{schema: sb.Bytes()[:sb.Len()-8]}
	e.w = ipc.NewWriter(&e.buf, ipc.WithSchema(schema))
	e.skip = len(e.schema)
	return e, nil
}

// encode serializes a record batch: the stream writer's output, less the
// schema message it writes first.
func (e *ipcEncoder) encode(rec arrow.Record) ([]byte, error) {
	e.buf.Reset()
	if err := e.w.Write(rec); err != nil {
		return nil, err
	}
	out := e.buf.Bytes()
	if e.skip > 0 {
		if !bytes.HasPrefix(out, e.schema) {
			return nil, fmt.Errorf("serializing an Arrow record batch: the stream does not begin with the schema")
		}
		out, e.skip = out[e.skip:], 0
	}
	return bytes.Clone(out), nil
}

// batchBuilder builds record batches of a schema.
type batchBuilder struct {
	fields []*field
	b      *array.RecordBuilder
	rows   int64
}

func newBatchBuilder(schema *arrow.Schema, fields []*field) *batchBuilder {
	return &batchBuilder{fields: fields, b: array.NewRecordBuilder(memory.DefaultAllocator, schema)}
}

func (bb *batchBuilder) append(vals []any) error {
	for i, f := range bb.fields {
		if err := appendArrow(bb.b.Field(i), f, vals[i]); err != nil {
			return err
		}
	}
	bb.rows++
	return nil
}

// flush returns the batch built so far and starts the next.
func (bb *batchBuilder) flush() arrow.Record {
	bb.rows = 0
	return bb.b.NewRecord()
}

func (bb *batchBuilder) release() { bb.b.Release() }
