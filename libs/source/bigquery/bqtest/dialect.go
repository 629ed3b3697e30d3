package bqtest

import (
	"fmt"
	"strconv"
	"strings"
)

// The server's dialect shim. The server runs GoogleSQL through DuckDB, whose
// dialect is close for the queries Ebb generates; translate rewrites what
// differs, token by token, outside string literals:
//
//   - `backtick` identifiers become "double-quoted" ones; a leading project
//     part (`project.dataset.table`) is dropped, the server has one project;
//   - "double-quoted" and 'single-quoted' string literals, with GoogleSQL's
//     backslash escapes, become DuckDB '...' literals;
//   - named parameters @name become DuckDB's positional $n;
//   - MD5(x), which returns BYTES in GoogleSQL and hex text in DuckDB,
//     becomes bq_md5(x), a macro returning the 16 bytes (see initConn);
//     TO_JSON_STRING(x) is a macro of the same name (to_json as text);
//   - the type names INT64, FLOAT64, BOOL and BYTES and SAFE_CAST become
//     DuckDB's.
//
// Anything else passes through as it is: a model using other GoogleSQL
// functions fails here with DuckDB's message, as an invalidQuery error.
type statement struct {
	sql    string
	params []string // parameter names in $n order
}

var renames = map[string]string{
	"MD5":       "bq_md5",
	"INT64":     "BIGINT",
	"FLOAT64":   "DOUBLE",
	"BOOL":      "BOOLEAN",
	"BYTES":     "BLOB",
	"SAFE_CAST": "TRY_CAST",
}

// macros define, on each DuckDB connection, the GoogleSQL functions the
// shim maps to macros.
var macros = []string{
	"CREATE OR REPLACE TEMP MACRO bq_md5(x) AS unhex(md5(x))",
	"CREATE OR REPLACE TEMP MACRO to_json_string(x) AS CAST(to_json(x) AS VARCHAR)",
}

func translate(sql string) (statement, error) {
	var out strings.Builder
	var st statement
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '#':
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			out.WriteString(sql[i : i+end])
			i += end
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return st, fmt.Errorf("Syntax error: Unclosed comment at [%d]", i)
			}
			out.WriteString(sql[i : i+end+4])
			i += end + 4
		case c == '\'' || c == '"':
			s, n, err := readString(sql[i:])
			if err != nil {
				return st, err
			}
			out.WriteString("'" + strings.ReplaceAll(s, "'", "''") + "'")
			i += n
		case c == '`':
			id, n, err := readString(sql[i:])
			if err != nil {
				return st, err
			}
			out.WriteString(quotePath(id))
			i += n
		case c == '@' && i+1 < len(sql) && isIdentStart(sql[i+1]):
			j := i + 1
			for j < len(sql) && isIdentPart(sql[j]) {
				j++
			}
			st.params = append(st.params, sql[i+1:j])
			out.WriteString("$" + strconv.Itoa(len(st.params)))
			i = j
		case isIdentStart(c):
			j := i
			for j < len(sql) && isIdentPart(sql[j]) {
				j++
			}
			word := sql[i:j]
			if r, ok := renames[strings.ToUpper(word)]; ok {
				word = r
			}
			out.WriteString(word)
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	st.sql = out.String()
	return st, nil
}

// unquoteBackticks rewrites the `backquoted` names of DuckDB SQL as
// DuckDB identifiers (see quotePath), leaving 'strings', "identifiers"
// and comments as they are.
func unquoteBackticks(sql string) string {
	var out strings.Builder
	for i := 0; i < len(sql); {
		end := i + 1
		switch c := sql[i]; {
		case c == '\'' || c == '"':
			end = quotedEnd(sql, i)
		case strings.HasPrefix(sql[i:], "--"):
			if end = strings.IndexByte(sql[i:], '\n'); end < 0 {
				end = len(sql)
			} else {
				end += i
			}
		case c == '`':
			if j := strings.IndexByte(sql[i+1:], '`'); j >= 0 {
				out.WriteString(quotePath(sql[i+1 : i+1+j]))
				i += j + 2
				continue
			}
		}
		out.WriteString(sql[i:end])
		i = end
	}
	return out.String()
}

// quotedEnd is the end of the literal or identifier quoted at sql[i],
// where a doubled quote stands for one.
func quotedEnd(sql string, i int) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		if sql[j] == q {
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}

// quotePath turns the inside of a backtick identifier, which may hold a
// dotted path, into DuckDB quoted identifiers.
func quotePath(path string) string {
	parts := strings.Split(path, ".")
	if len(parts) == 3 {
		parts = parts[1:] // project.dataset.table: the server has one project
	}
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// readString reads a GoogleSQL quoted string literal (not triple-quoted)
// at the start of s and returns its value and length.
func readString(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case q:
			return b.String(), i + 1, nil
		case '\\':
			if i+1 == len(s) {
				break
			}
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			default:
				b.WriteByte(e) // \\ \' \" \`
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("Syntax error: Unclosed string literal")
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// identifiers lists the identifier tokens of a translated statement,
// lower-cased, with dotted paths joined ("ds.t"), for access checks.
func identifiers(sql string) []string {
	var ids []string
	var path []string
	flush := func() {
		if len(path) > 0 {
			ids = append(ids, strings.ToLower(strings.Join(path, ".")))
			path = path[:0]
		}
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'':
			flush()
			j := i + 1
			for j < len(sql) && (sql[j] != '\'' || j+1 < len(sql) && sql[j+1] == '\'') {
				if sql[j] == '\'' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '"':
			j := i + 1
			for j < len(sql) && (sql[j] != '"' || j+1 < len(sql) && sql[j+1] == '"') {
				if sql[j] == '"' {
					j++
				}
				j++
			}
			path = append(path, strings.ReplaceAll(sql[i+1:min(j, len(sql))], `""`, `"`))
			i = j + 1
		case isIdentStart(c):
			j := i
			for j < len(sql) && isIdentPart(sql[j]) {
				j++
			}
			path = append(path, sql[i:j])
			i = j
		case c == '.' && len(path) > 0:
			i++
		default:
			flush()
			i++
		}
	}
	flush()
	return ids
}
