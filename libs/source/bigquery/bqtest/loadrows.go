package bqtest

import (
	"bufio"
	"bytes"
	"database/sql/driver"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// rowReader reads a load job's data row by row, with bounded memory.
type rowReader interface {
	// next returns a row's values typed for the staging table (see
	// stagingType), a *rowError for a row it cannot read, io.EOF at the end.
	next() ([]driver.Value, error)
	// count is the number of rows read so far.
	count() int64
}

func newRowReader(cfg loadConfig, fields []*field, r io.Reader) (rowReader, error) {
	if cfg.SourceFormat == "NEWLINE_DELIMITED_JSON" {
		byName := map[string]int{}
		for i, f := range fields {
			byName[strings.ToLower(f.Name)] = i
		}
		return &jsonReader{r: bufio.NewReaderSize(r, 64<<10), fields: fields, byName: byName, ignoreUnknown: cfg.IgnoreUnknownValues}, nil
	}
	comma, err := delimiter(cfg.FieldDelimiter)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.FieldsPerRecord = -1 // checked by csvReader, with BigQuery's messages
	cr.ReuseRecord = true
	nulls := cfg.NullMarkers
	if len(nulls) == 0 {
		nulls = []string{cfg.NullMarker}
	}
	return &csvReader{r: cr, cfg: cfg, fields: fields, nulls: nulls, skip: cfg.SkipLeadingRows}, nil
}

// jsonReader reads newline-delimited JSON: an object a line, fields by
// name (case-insensitively), missing fields NULL.
type jsonReader struct {
	r             *bufio.Reader
	fields        []*field
	byName        map[string]int
	ignoreUnknown bool
	pos           int64 // offset of the next line
	rows          int64
}

func (j *jsonReader) count() int64 { return j.rows }

func (j *jsonReader) next() ([]driver.Value, error) {
	for {
		line, err := j.r.ReadBytes('\n')
		start := j.pos
		j.pos += int64(len(line))
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return nil, err
			}
			continue // blank lines hold no row
		}
		j.rows++
		vals, rerr := j.row(line)
		if rerr != nil {
			return nil, &rowError{fmt.Sprintf("JSON parsing error in row starting at position %d: %v", start, rerr)}
		}
		return vals, nil
	}
}

func (j *jsonReader) row(line []byte) ([]driver.Value, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("Row is not a JSON object")
	}
	vals := make([]driver.Value, len(j.fields))
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		i, ok := j.byName[strings.ToLower(name)]
		if !ok {
			if j.ignoreUnknown {
				continue
			}
			return nil, fmt.Errorf("No such field: %s.", name)
		}
		v, err := jsonValue(obj[name], j.fields[i])
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return vals, nil
}

// jsonValue converts a JSON value: a string or a number, true or false as
// its text; a JSON column keeps the value's JSON text.
func jsonValue(raw json.RawMessage, f *field) (driver.Value, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case string(raw) == "null":
		return nil, nil
	case f.Type == "JSON":
		return string(raw), nil
	case raw[0] == '{' || raw[0] == '[':
		return nil, fmt.Errorf("Cannot convert a JSON object or array to %s. Field: %s", f.Type, f.Name)
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return textValue(s, f)
	}
	return textValue(string(raw), f)
}

// textValue converts the text of a value to the staging type of its field;
// the types staged as text are cast by DuckDB.
func textValue(s string, f *field) (driver.Value, error) {
	fail := func() error {
		if len(s) > 64 {
			s = s[:64] + "..."
		}
		return fmt.Errorf("Could not convert value to %s. Field: %s; Value: %s", f.Type, f.Name, s)
	}
	switch f.Type {
	case "INTEGER":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fail()
		}
		return n, nil
	case "FLOAT":
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fail()
		}
		return x, nil
	case "BOOLEAN":
		switch strings.ToLower(s) {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
		return nil, fail()
	case "BYTES":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("Could not decode base64 string to bytes. Field: %s", f.Name)
		}
		return b, nil
	}
	return s, nil
}

// csvReader reads CSV: fields by position, quoted with ", a field equal to
// a null marker NULL.
type csvReader struct {
	r      *csv.Reader
	cfg    loadConfig
	fields []*field
	nulls  []string
	skip   int64 // leading rows yet to skip
	rows   int64
}

func (c *csvReader) count() int64 { return c.rows }

func (c *csvReader) next() ([]driver.Value, error) {
	for {
		start := c.r.InputOffset()
		rec, err := c.r.Read()
		var pe *csv.ParseError
		switch {
		case errors.Is(err, io.EOF):
			return nil, io.EOF
		case err != nil && !errors.As(err, &pe):
			return nil, err
		case c.skip > 0:
			c.skip--
			continue
		}
		c.rows++
		if pe != nil {
			return nil, &rowError{fmt.Sprintf("Error detected while parsing row starting at position: %d. Error: %v.", start, pe.Err)}
		}
		return c.row(rec, start)
	}
}

func (c *csvReader) row(rec []string, start int64) ([]driver.Value, error) {
	n := len(c.fields)
	if len(rec) > n && !c.cfg.IgnoreUnknownValues {
		return nil, &rowError{fmt.Sprintf("Too many values in row starting at position: %d.", start)}
	}
	if len(rec) < n && !c.cfg.AllowJaggedRows {
		return nil, &rowError{fmt.Sprintf("CSV table references column position %d, but line starting at position:%d contains only %d columns.", n-1, start, len(rec))}
	}
	vals := make([]driver.Value, n)
	for i, f := range c.fields {
		if i >= len(rec) || c.isNull(rec[i], f) {
			continue
		}
		if !c.cfg.AllowQuotedNewlines && strings.Contains(rec[i], "\n") {
			return nil, &rowError{fmt.Sprintf("Error detected while parsing row starting at position: %d. Error: Quoted newlines are not allowed (allowQuotedNewlines is false).", start)}
		}
		v, err := textValue(rec[i], f)
		if err != nil {
			return nil, &rowError{fmt.Sprintf("Error detected while parsing row starting at position: %d. Error: %v.", start, err)}
		}
		vals[i] = v
	}
	return vals, nil
}

// isNull: a field equal to a null marker is NULL, but with markers of its
// own an empty STRING or BYTES field is an empty value, as BigQuery
// documents for nullMarker.
func (c *csvReader) isNull(v string, f *field) bool {
	if v == "" && (f.Type == "STRING" || f.Type == "BYTES") && !slices.Equal(c.nulls, []string{""}) {
		return false
	}
	return slices.Contains(c.nulls, v)
}

// delimiter reads fieldDelimiter: one character, "\t" or "tab" for a tab;
// "," by default.
func delimiter(d string) (rune, error) {
	switch d {
	case "":
		return ',', nil
	case `\t`, "\t", "tab":
		return '\t', nil
	}
	r, size := utf8.DecodeRuneInString(d)
	if size != len(d) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
		return 0, invalid(fmt.Sprintf("This server reads CSV with a one-character field delimiter, not %q", d))
	}
	return r, nil
}
