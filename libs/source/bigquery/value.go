package bigquery

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	bq "cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/ebb-etl/ebb/libs/source/internal/canon"
)

// representable checks every column (and nested field) has a canonical
// form. INTERVAL and RANGE have none that other warehouses share, so a
// model must cast them (to STRING, say) rather than have Ebb invent one.
func representable(schema bq.Schema, prefix string) error {
	for _, f := range schema {
		name := prefix + f.Name
		switch f.Type {
		case bq.StringFieldType, bq.BytesFieldType, bq.IntegerFieldType, bq.FloatFieldType,
			bq.BooleanFieldType, bq.TimestampFieldType, bq.DateFieldType, bq.TimeFieldType,
			bq.DateTimeFieldType, bq.NumericFieldType, bq.BigNumericFieldType,
			bq.GeographyFieldType, bq.JSONFieldType:
		case bq.RecordFieldType:
			if err := representable(f.Schema, name+"."); err != nil {
				return err
			}
		default:
			return fmt.Errorf("column %q has type %s, which Ebb cannot represent: cast it in the model, e.g. CAST(%s AS STRING)",
				name, typeName(f), f.Name)
		}
	}
	return nil
}

// typeName names a field's type in GoogleSQL terms, for messages.
func typeName(f *bq.FieldSchema) string {
	var t string
	switch f.Type {
	case bq.IntegerFieldType:
		t = "INT64"
	case bq.FloatFieldType:
		t = "FLOAT64"
	case bq.BooleanFieldType:
		t = "BOOL"
	case bq.RecordFieldType:
		parts := make([]string, len(f.Schema))
		for i, sf := range f.Schema {
			parts[i] = sf.Name + " " + typeName(sf)
		}
		t = "STRUCT<" + strings.Join(parts, ", ") + ">"
	case bq.RangeFieldType:
		t = "RANGE"
		if f.RangeElementType != nil {
			t += "<" + string(f.RangeElementType.Type) + ">"
		}
	default:
		t = string(f.Type)
	}
	if f.Repeated {
		return "ARRAY<" + t + ">"
	}
	return t
}

// canonical converts a value from the client to its canonical form (see
// package source): ARRAY becomes []any, STRUCT and JSON JSON documents.
func canonical(v bq.Value, f *bq.FieldSchema) (any, error) {
	if v == nil {
		return nil, nil
	}
	if !f.Repeated {
		return scalar(v, f)
	}
	list, ok := v.([]bq.Value)
	if !ok {
		return nil, unexpected("ARRAY", v)
	}
	out := make([]any, len(list))
	for i, e := range list {
		c, err := scalar(e, f)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out[i] = c
	}
	return out, nil
}

// scalar converts one non-repeated value.
func scalar(v bq.Value, f *bq.FieldSchema) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case int64, bool, string:
		if f.Type == bq.JSONFieldType {
			return json.RawMessage(x.(string)), nil
		}
		return x, nil
	case float64:
		return canon.Float(x), nil
	case []byte:
		return canon.Bytes(x), nil
	case *big.Rat:
		return decimal(x)
	case time.Time:
		return canon.TimestampTZ(x), nil
	case civil.Date:
		return canon.Date(x.In(time.UTC)), nil
	case civil.DateTime:
		return canon.Timestamp(x.In(time.UTC)), nil
	case civil.Time:
		t := time.Date(2000, 1, 1, x.Hour, x.Minute, x.Second, x.Nanosecond, time.UTC)
		return t.Format(canon.TimeLayout), nil
	case []bq.Value:
		if f.Type == bq.RecordFieldType {
			return structJSON(x, f.Schema)
		}
	}
	return nil, unexpected(string(f.Type), v)
}

// structJSON renders a STRUCT as a JSON object, its fields in schema order.
func structJSON(vals []bq.Value, schema bq.Schema) (json.RawMessage, error) {
	if len(vals) != len(schema) {
		return nil, fmt.Errorf("STRUCT of %d values for %d fields", len(vals), len(schema))
	}
	buf := []byte{'{'}
	for i, f := range schema {
		c, err := canonical(vals[i], f)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Name, err)
		}
		name, _ := json.Marshal(f.Name)
		value, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Name, err)
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(append(append(buf, name...), ':'), value...)
	}
	return append(buf, '}'), nil
}

// maxScale bounds the fraction digits of an exact decimal: BIGNUMERIC
// has 38.
const maxScale = 38

// decimal renders a NUMERIC or BIGNUMERIC exactly, with as many fraction
// digits as the value needs: BigQuery keeps no declared scale in query
// results ("1.50" in a NUMERIC(10,2) column comes back as 1.5).
func decimal(r *big.Rat) (json.Number, error) {
	pow := big.NewInt(1)
	ten := big.NewInt(10)
	rem := new(big.Int)
	for scale := 0; scale <= maxScale; scale++ {
		if rem.Mod(pow, r.Denom()).Sign() == 0 {
			return json.Number(r.FloatString(scale)), nil
		}
		pow.Mul(pow, ten)
	}
	return "", fmt.Errorf("%s is not a decimal of at most %d fraction digits", r.String(), maxScale)
}

func unexpected(want string, v any) error {
	return fmt.Errorf("expected a %s value, got %T", want, v)
}
