package webhook

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/record"
)

// stdlibBody is the reference encoding of the contract with encoding/json.
func stdlibBody(b destination.Batch) ([]byte, error) {
	type wire struct {
		Op   record.Op      `json:"op"`
		Key  map[string]any `json:"key"`
		Data any            `json:"data,omitempty"`
	}
	recs := make([]wire, len(b.Records))
	for i, r := range b.Records {
		recs[i] = wire{Op: r.Op, Key: r.Key}
		if recs[i].Key == nil {
			recs[i].Key = map[string]any{}
		}
		if r.Op != record.OpDelete {
			if r.Data != nil {
				recs[i].Data = r.Data
			} else {
				recs[i].Data = map[string]any{}
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		Sync    string `json:"sync"`
		RunID   string `json:"run_id"`
		BatchID string `json:"batch_id"`
		Records []wire `json:"records"`
	}{b.Sync, b.RunID, b.ID, recs})
	return buf.Bytes(), err
}

func encode(t *testing.T, b destination.Batch) ([]byte, []int, []error) {
	t.Helper()
	e := getEncoder()
	defer putEncoder(e)
	errs := e.encodeBatch(b)
	return bytes.Clone(e.j.Buf), append([]int(nil), e.sent...), errs
}

var tricky = []string{
	"", "plain", `quote " backslash \ slash /`, "<html>&amp;</html>", "ünïcødé 日本語 🎉",
	"\x00\x01\x07\b\f\n\r\t\x1f\x7f", "line\u2028sep\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, 0, -1, int64(math.MaxInt64), int64(math.MinInt64),
		0.0, -0.0, 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, 1.0 / 3, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-10,
		json.Number("0"), json.Number("-12.5e+3"), json.Number("12345678901234.123456"), json.Number(""),
		json.RawMessage(`{ "b" : [1, 2], "a":"<x>" }`),
		[]any{"a", json.Number("1"), nil, []any{}, map[string]any{"z": 1, "a": 2}},
		[]any(nil), map[string]any(nil), map[string]any{},
		time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), // fallback path
		[]string{"x", "<y>"}, float32(0.1), uint8(7),
	}
	for _, s := range tricky {
		values = append(values, s)
	}
	data := map[string]any{}
	for i, v := range values {
		data[string(rune('a'+i%26))+strings.Repeat("k", i/26)] = v
	}
	for _, s := range tricky {
		data[s] = s // tricky keys too
	}
	b := destination.Batch{ID: "id <&> \u2028", Sync: "s\n", RunID: "r\xff", Records: []record.Record{
		{Op: record.OpUpsert, Key: map[string]any{"id": 1, "k2": "x"}, Data: data},
		{Op: record.OpInsert, Key: map[string]any{"id": 2}},
		{Op: record.OpDelete, Key: map[string]any{"id": 3}, Data: map[string]any{"ignored": 1}},
		{Op: record.OpUpdate},
	}}
	got, sent, errs := encode(t, b)
	require.Nil(t, errs)
	assert.Equal(t, []int{0, 1, 2, 3}, sent)
	want, err := stdlibBody(b)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

func TestEncodeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var value func(depth int) any
	value = func(depth int) any {
		switch rng.IntN(9) {
		case 0:
			return nil
		case 1:
			return rng.IntN(2) == 0
		case 2:
			return rng.Int64() - rng.Int64()
		case 3:
			return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(60)-30))
		case 4:
			return json.Number("-123.456e7")
		case 5:
			if depth < 3 {
				m := map[string]any{}
				for range rng.IntN(5) {
					m[tricky[rng.IntN(len(tricky))]+string(rune(rng.IntN(0x3000)))] = value(depth + 1)
				}
				return m
			}
			return "leaf"
		case 6:
			if depth < 3 {
				a := make([]any, rng.IntN(4))
				for i := range a {
					a[i] = value(depth + 1)
				}
				return a
			}
			return 1
		default:
			r := []rune(tricky[rng.IntN(len(tricky))])
			for range rng.IntN(8) {
				r = append(r, rune(rng.IntN(0x11000)))
			}
			return string(r)
		}
	}
	for range 200 {
		data := map[string]any{}
		for range rng.IntN(10) {
			data[tricky[rng.IntN(len(tricky))]+string(rune('a'+rng.IntN(26)))] = value(0)
		}
		b := destination.Batch{ID: "x", Records: []record.Record{{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: data}}}
		got, _, errs := encode(t, b)
		require.Nil(t, errs)
		want, err := stdlibBody(b)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
}

func TestEncodeBadRecordIsLeftOut(t *testing.T) {
	b := destination.Batch{ID: "x", Records: []record.Record{
		{Op: record.OpUpsert, Key: map[string]any{"id": 1}, Data: map[string]any{"v": 1}},
		{Op: record.OpUpsert, Key: map[string]any{"id": 2}, Data: map[string]any{"nested": []any{map[string]any{"v": math.NaN()}}}},
		{Op: record.OpUpsert, Key: map[string]any{"id": 3}, Data: map[string]any{"v": json.Number("1.2.3")}},
		{Op: "merge", Key: map[string]any{"id": 4}},
		{Op: record.OpUpsert, Key: map[string]any{"id": 5}, Data: map[string]any{"v": json.RawMessage(`{bad`)}},
		{Op: record.OpDelete, Key: map[string]any{"id": 6}},
	}}
	got, sent, errs := encode(t, b)
	require.Len(t, errs, 6)
	assert.Equal(t, []int{0, 5}, sent)
	assert.NoError(t, errs[0])
	assert.ErrorContains(t, errs[1], `field "nested": [0]: field "v": unsupported value NaN`)
	assert.ErrorContains(t, errs[2], `invalid number literal "1.2.3"`)
	assert.ErrorContains(t, errs[3], `unknown op "merge"`)
	assert.ErrorContains(t, errs[4], `field "v"`)
	assert.NoError(t, errs[5])
	assert.JSONEq(t, `{"sync":"","run_id":"","batch_id":"x","records":[
		{"op":"upsert","key":{"id":1},"data":{"v":1}},{"op":"delete","key":{"id":6}}]}`, string(got))
}

// Raw data (what delivery hands a RawTaker) makes the same JSON body as
// decoded data.
func TestRawDataEncodesTheSame(t *testing.T) {
	data := map[string]any{"email": "a<b>@example.com", "n": json.Number("12.50"), "nested": map[string]any{"z": true, "a": nil}}
	raw, err := json.Marshal(data)
	require.NoError(t, err)
	key := map[string]any{"id": json.Number("1")}
	body := func(rec record.Record) map[string]any {
		e := getEncoder()
		defer putEncoder(e)
		require.Nil(t, e.encodeBatch(destination.Batch{ID: "b", Sync: "s", RunID: "r", Records: []record.Record{rec}}))
		var out map[string]any
		require.NoError(t, record.Decode(e.j.Buf, &out))
		return out
	}
	require.Equal(t,
		body(record.Record{Op: record.OpUpsert, Key: key, Data: data}),
		body(record.Record{Op: record.OpUpsert, Key: key, RawData: raw}))
}
