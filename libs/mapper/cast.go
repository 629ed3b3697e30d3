package mapper

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ebb-etl/ebb/libs/config"
)

// cast converts a non-NULL value. Values arrive as the extractor sends
// them: json.Number for numbers (int64 and float64 are accepted too),
// strings, booleans, objects and arrays.
func cast(v any, to, format string) (any, error) {
	switch to {
	case "number":
		return toNumber(v)
	case "boolean":
		return toBool(v)
	case "string":
		return toString(v)
	case "timestamp":
		t, err := toTime(v)
		if err != nil {
			return nil, err
		}
		return formatTime(t, format), nil
	}
	return nil, fmt.Errorf("unknown cast %q", to)
}

// toNumber keeps numbers exact: the result is a json.Number.
func toNumber(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return x, nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case int:
		return json.Number(strconv.Itoa(x)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("cannot cast %v to number", x)
		}
		return json.Number(strconv.FormatFloat(x, 'f', -1, 64)), nil
	case bool:
		if x {
			return json.Number("1"), nil
		}
		return json.Number("0"), nil
	case string:
		s := strings.TrimSpace(x)
		if isJSONNumber(s) {
			return json.Number(s), nil
		}
	}
	return nil, fmt.Errorf("cannot cast %s to number", describe(v))
}

// isJSONNumber reports whether s is exactly one JSON number.
func isJSONNumber(s string) bool {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.InputOffset() != int64(len(s)) {
		return false
	}
	_, ok := v.(json.Number)
	return ok
}

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case json.Number, int64, int, float64:
		n, err := strconv.ParseFloat(fmt.Sprint(x), 64)
		if err == nil && (n == 0 || n == 1) {
			return n == 1, nil
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "t", "yes", "y", "1":
			return true, nil
		case "false", "f", "no", "n", "0":
			return false, nil
		}
	}
	return nil, fmt.Errorf("cannot cast %s to boolean", describe(v))
}

// toString writes numbers as they are, and objects and arrays as JSON.
func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("cannot cast %T to string: %w", v, err)
	}
	return string(data), nil
}

// inputLayouts are the timestamp texts sources write (RFC 3339 for
// timestamps with a zone, without one, dates) and a few common others.
var inputLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999", "2006-01-02",
}

// toTime reads a timestamp text, or a number of seconds since the epoch.
// A time without a zone is UTC.
func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		for _, layout := range inputLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t, nil
			}
		}
	case json.Number, int64, float64:
		f, err := strconv.ParseFloat(fmt.Sprint(x), 64)
		if err == nil && !math.IsInf(f, 0) {
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot cast %s to timestamp", describe(v))
}

func isNamedFormat(f string) bool { return slices.Contains(config.TimestampFormats, f) }

// formatTime writes t in a format of config.TimestampFormats or a Go
// layout; unix formats are numbers.
func formatTime(t time.Time, format string) any {
	t = t.UTC()
	switch format {
	case "", "rfc3339":
		return t.Format(time.RFC3339Nano)
	case "rfc3339_ms":
		return t.Format("2006-01-02T15:04:05.000Z07:00")
	case "date":
		return t.Format("2006-01-02")
	case "unix":
		return json.Number(strconv.FormatInt(t.Unix(), 10))
	case "unix_ms":
		return json.Number(strconv.FormatInt(t.UnixMilli(), 10))
	}
	return t.Format(format)
}

func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%q", fmt.Sprint(v))
}
