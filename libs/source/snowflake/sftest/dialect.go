package sftest

import (
	"regexp"
	"strings"
)

// The server's dialect shim. The SQL runs on DuckDB, which already speaks
// most of what Ebb's Snowflake source emits (CAST, LENGTH, MD5, TO_JSON,
// CASE, ||, NULLS FIRST, INFORMATION_SCHEMA). translate rewrites the
// Snowflake spellings it does not, outside string literals, quoted
// identifiers and comments:
//   - numbered bind variables ":1" become DuckDB's "$1";
//   - "COLLATE 'utf8'" (compare by UTF-8 bytes) becomes DuckDB's "COLLATE c";
//   - CREATE [OR REPLACE] TRANSIENT TABLE loses TRANSIENT: a transient
//     table differs from a permanent one in its Fail-safe and Time Travel
//     retention, which the server does not have.
//
// MD5_BINARY(x), the 16 bytes of the MD5 digest, is a macro (see macros).
func translate(sql string) string {
	var out strings.Builder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case isWordStart(c) && (i == 0 || !isWordChar(sql[i-1])):
			end := i + 1
			for end < len(sql) && isWordChar(sql[end]) {
				end++
			}
			word := sql[i:end]
			transient := strings.EqualFold(word, "TRANSIENT") &&
				(endsWithWord(out.String(), "CREATE") || endsWithWord(out.String(), "OR REPLACE"))
			if !transient {
				out.WriteString(word)
			}
			i = end
		case c == '\'' || c == '"':
			end := quotedEnd(sql, i)
			lit := sql[i:end]
			if c == '\'' && strings.EqualFold(lit, "'utf8'") && endsWithWord(out.String(), "COLLATE") {
				lit = "c"
			}
			out.WriteString(lit)
			i = end
		case strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			out.WriteString(sql[i : i+end])
			i += end
		case strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				end = len(sql) - i - 2
			} else {
				end += 2
			}
			out.WriteString(sql[i : i+2+end])
			i += 2 + end
		case c == ':' && i+1 < len(sql) && isDigit(sql[i+1]) && (i == 0 || sql[i-1] != ':'):
			out.WriteByte('$')
			i++
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String()
}

// quotedEnd returns the index after the literal or identifier opening at i;
// a doubled quote inside it is an escaped quote.
func quotedEnd(sql string, i int) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		if sql[j] != q {
			continue
		}
		if j+1 < len(sql) && sql[j+1] == q {
			j++
			continue
		}
		return j + 1
	}
	return len(sql)
}

func endsWithWord(s, word string) bool {
	s = strings.TrimRight(s, " \t\r\n")
	return len(s) >= len(word) && strings.EqualFold(s[len(s)-len(word):], word)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

func isWordChar(c byte) bool { return isWordStart(c) || isDigit(c) || c == '$' }

// macros define, in the server's database, the Snowflake functions DuckDB
// lacks.
var macros = []string{
	"CREATE OR REPLACE MACRO md5_binary(x) AS unhex(md5(x))",
}

// statementKind classifies a statement by its first keyword.
func statementKind(sql string) string {
	s := strings.TrimLeft(sql, " \t\r\n(")
	for strings.HasPrefix(s, "--") || strings.HasPrefix(s, "/*") {
		if strings.HasPrefix(s, "--") {
			_, s, _ = strings.Cut(s, "\n")
		} else {
			_, s, _ = strings.Cut(s, "*/")
		}
		s = strings.TrimLeft(s, " \t\r\n(")
	}
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
	if end < 0 {
		end = len(s)
	}
	word := strings.ToUpper(s[:end])
	switch word {
	case "SELECT", "WITH", "FROM", "VALUES":
		return "query"
	case "INSERT", "UPDATE", "DELETE", "MERGE":
		return word
	case "ALTER":
		if fields := strings.Fields(strings.ToUpper(s)); len(fields) > 1 && fields[1] == "SESSION" {
			return "session"
		}
	case "USE":
		return "session"
	}
	return "other"
}

// DuckDB's error classes and the Snowflake errors they become.
var (
	missingTable = regexp.MustCompile(`Table with name ([^ ]+) does not exist`)
	errorClasses = []struct {
		prefix, code, sqlState, lead string
	}{
		{"Parser Error: ", "001003", "42000", "SQL compilation error:\n"},
		{"Binder Error: ", "000904", "42000", "SQL compilation error:\n"},
		{"Catalog Error: ", "002003", "02000", "SQL compilation error:\n"},
		{"Conversion Error: ", "100038", "22018", ""},
		{"Invalid Input Error: ", "100069", "22000", ""},
		{"Out of Range Error: ", "100035", "22003", ""},
	}
)

// sqlError turns a DuckDB error into the Snowflake error a client sees for
// the same fault.
func sqlError(err error) sfError {
	msg := err.Error()
	if m := missingTable.FindStringSubmatch(msg); m != nil {
		name := strings.TrimRight(m[1], "!.")
		return sfError{"002003", "42S02", "SQL compilation error:\nObject '" + name + "' does not exist or not authorized."}
	}
	for _, c := range errorClasses {
		if _, rest, ok := strings.Cut(msg, c.prefix); ok {
			return sfError{c.code, c.sqlState, c.lead + rest}
		}
	}
	return sfError{"100000", "22000", msg}
}
