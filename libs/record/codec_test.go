package record_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/record"
)

// The codec's contract is encoding/json's: the same bytes out for the
// same structs (HTML escaping off), the same values in for the same bytes.

func stdEncode(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func stdDecode(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimLeft(data[d.InputOffset():], " \t\r\n")) > 0 {
		return errors.New("trailing data")
	}
	return nil
}

var trickyStrings = []string{
	"", "plain", `quote " backslash \ slash /`, "<html>&amp;</html>", "ünïcødé 日本語 🎉",
	"\x00\x01\x07\b\f\n\r\t\x1f\x7f", "line\u2028sep\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate",
}

func trickyBatch() record.Batch {
	data := map[string]any{
		"int": int64(-42), "i": 7, "f": 1.5, "big": 1e21, "small": 1e-7, "zero": 0.0,
		"num": json.Number("12345678901234567890.125"), "t": true, "no": false, "nil": nil,
		"list": []any{"a", json.Number("1"), nil, []any{}, map[string]any{"z": 1, "a": 2}},
		"obj":  map[string]any{"b": map[string]any{}, "a": []any(nil)},
		"raw":  json.RawMessage(`{ "b" : [1, 2], "a":"<x>" }`),
	}
	for i, s := range trickyStrings {
		data[s] = s
		data[strings.Repeat("k", i)] = s
	}
	recs := []record.Record{
		{Op: record.OpUpsert, Change: record.Added, KeyEnc: record.AppendInt(nil, 1), Key: map[string]any{"id": int64(1)}, Data: data},
		{Op: record.OpDelete, Change: record.Deleted, KeyEnc: record.AppendString(nil, "x\x00y"), Key: map[string]any{"id": "x\x00y"}},
		{Op: record.OpUpdate, Change: record.Changed, KeyEnc: record.Key{}, Key: map[string]any{}, Data: map[string]any{},
			Final: record.Failed, Error: "mapping: \"bad\" <value>", Extra: true},
		{Op: "", Change: 0},
	}
	return record.Batch{Sync: "s<&>", RunID: "01RUN", Seq: 12, Partition: 3, Destination: "d", Records: recs}
}

func TestEncodeBatchMatchesEncodingJSON(t *testing.T) {
	for _, b := range []record.Batch{trickyBatch(), {Sync: "empty"}, {Records: []record.Record{}}} {
		got, err := record.EncodeBatch(b)
		require.NoError(t, err)
		assert.Equal(t, string(stdEncode(t, b)), string(got))
	}
}

func TestBatchWriterMatchesEncodeBatch(t *testing.T) {
	b := trickyBatch()
	w := record.NewBatchWriter(b)
	for _, r := range b.Records {
		_, err := w.Add(r)
		require.NoError(t, err)
	}
	want, err := record.EncodeBatch(b)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(w.Bytes()))
}

func TestDecodeBatchMatchesEncodingJSON(t *testing.T) {
	data := stdEncode(t, trickyBatch())
	var want record.Batch
	require.NoError(t, stdDecode(data, &want))

	got, err := record.DecodeBatch(data, false)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// Kept raw, the data is the encoded object, and decodes to the same.
	raw, err := record.DecodeBatch(data, true)
	require.NoError(t, err)
	assert.Nil(t, raw.Records[0].Data)
	assert.True(t, json.Valid(raw.Records[0].RawData))
	assert.Nil(t, raw.Records[1].RawData, "a delete has no data")
	require.NoError(t, raw.DecodeData())
	assert.Equal(t, want, raw)

	// Written back from RawData, the batch is the same message.
	raw, err = record.DecodeBatch(data, true)
	require.NoError(t, err)
	again, err := record.EncodeBatch(raw)
	require.NoError(t, err)
	assert.Equal(t, string(data), string(again))
}

func TestResultsMatchEncodingJSON(t *testing.T) {
	rb := record.ResultBatch{Sync: "s", RunID: "r", Seq: 4, Partition: 1, Retries: 2, Results: []record.Result{
		{KeyEnc: record.AppendInt(nil, 9), Op: record.OpUpsert, Change: record.Added, Status: record.Delivered, PayloadHash: "abc"},
		{KeyEnc: nil, Op: record.OpDelete, Change: record.Deleted, Status: record.Failed, Error: trickyStrings[5], Extra: true},
	}}
	for _, v := range []record.ResultBatch{rb, {Sync: "none"}} {
		data, err := record.EncodeResults(v)
		require.NoError(t, err)
		assert.Equal(t, string(stdEncode(t, v)), string(data))

		got, err := record.DecodeResults(data)
		require.NoError(t, err)
		var want record.ResultBatch
		require.NoError(t, stdDecode(data, &want))
		assert.Equal(t, want, got)
	}
}

func TestEncodeRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), json.Number("1.2.3"), json.RawMessage(`{`)} {
		b := record.Batch{Records: []record.Record{{Key: map[string]any{"id": 1}, Data: map[string]any{"v": v}}}}
		_, err := record.EncodeBatch(b)
		assert.Error(t, err, "%#v", v)
	}
}

func TestDecodeNamesWhatIsWrong(t *testing.T) {
	for data, want := range map[string]string{
		`{"sync":"s","records":[{"op":"upsert","c":"a"}]}`:           "record 0",
		`{"sync":"s","records":[{"k":"!!"}]}`:                        "base64",
		`{"sync":"s","records":[{"c":300}]}`:                         "out of range",
		`{"sync":"s","seq":1.5}`:                                     "want an integer",
		`{"sync":"s"} x`:                                             "after the value",
		"{\"sync\":\"s\",\"records\":[{\"data\":{\"a\":\"\x01\"}}]}": "control character",
		`{"sync":"s","records":[{"data":{"a":1,}}]}`:                 "field name",
		`{"sync":"s","records":[{"data":{"a":tru}}]}`:                "want true",
		`{"sync":"s","records":[{"data":{"a":"\u12"}}]}`:             `\u escape`,
		`{"sync":"s","records":[{"data":{"a":-}}]}`:                  "invalid number",
		`{"sync":"s","records":[{"data":{"a":"unterminated`:          "unterminated",
	} {
		_, err := record.DecodeBatch([]byte(data), false)
		require.Error(t, err, data)
		assert.Contains(t, err.Error(), want, data)
		_, err = record.DecodeBatch([]byte(data), true)
		assert.Error(t, err, data)
	}
}

// FuzzParseJSON holds the parser to encoding/json on any input: both
// refuse it, or both read the same value.
func FuzzParseJSON(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(string(stdEncode(&testing.T{}, s)))
	}
	for _, s := range []string{
		`{"a":[1,-2.5e+3,true,false,null,{"b":"c"}],"a":"again"}`, `"\ud83d\ude00 \ud83d x \u00e9"`, `[]`, `{}`, ` 0 `,
		`-0.0e-0`, `01`, `1.`, `.5`, `"\/\b\f\n\r\t"`, `[1,]`, `{"a" 1}`, `nul`, "\"\xff\"", `"\ud800\u0041"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := record.ParseJSON([]byte(in))
		var want any
		wantErr := stdDecode([]byte(in), &want)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: parser error %v, encoding/json error %v", in, err, wantErr)
		}
		if err == nil && !assert.ObjectsAreEqual(want, got) {
			t.Fatalf("%q: parser read %#v, encoding/json %#v", in, got, want)
		}
		// Kept raw, data is checked as encoding/json checks a RawMessage.
		msg := []byte(`{"records":[{"data":` + in + `}]}`)
		if _, err := record.DecodeBatch(msg, true); (err == nil) != json.Valid(msg) {
			t.Fatalf("%q kept raw: parser error %v, json.Valid %v", in, err, json.Valid(msg))
		}
	})
}
