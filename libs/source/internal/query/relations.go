package query

import (
	"strings"
	"unicode"
)

// Relation is a table or view a model names, as written: one to three
// parts (table, schema.table, database.schema.table). Quoted parts keep
// their case and have Quoted set.
type Relation struct {
	Parts  []string
	Quoted []bool
}

// String writes the name as it appeared, parts joined by dots.
func (r Relation) String() string { return strings.Join(r.Parts, ".") }

// Relations lists the relations a model reads: every name after FROM or
// JOIN (and after the commas of a FROM list) that is not a subquery, a
// function call or a CTE of the statement. It is conservative, not a
// parser: a name it misses is still caught when the model runs, and a
// name it wrongly finds resolves to no table and is then ignored.
//
// A parser of the warehouse (Postgres's EXPLAIN) would fail with
// "permission denied" at the first table the role cannot read, name only
// that one, and list a view's base tables where the grant needed is on the
// view; Redshift and Snowflake have no equivalent that works without the
// grants being checked. So checks read the names the model writes.
func Relations(sql string) []Relation {
	toks := tokenize(sql)
	ctes := cteNames(toks)
	var out []Relation
	seen := map[string]bool{}
	// opener[d] is the word before the parenthesis opening depth d, to
	// skip the FROM of EXTRACT(x FROM y), SUBSTRING(x FROM 1) and TRIM;
	// inFrom[d] is set between FROM and the end of its clause, where a
	// comma starts another table reference.
	opener, inFrom := []string{""}, []bool{false}
	add := func(r Relation) {
		if len(r.Parts) == 1 && ctes[strings.ToLower(r.Parts[0])] {
			return
		}
		if k := r.String(); !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	for i := 0; i < len(toks); i++ {
		t, d := toks[i], len(opener)-1
		switch kw := t.keyword(); {
		case t.text == "(":
			w := ""
			if i > 0 && toks[i-1].word() {
				w = strings.ToUpper(toks[i-1].text)
			}
			opener, inFrom = append(opener, w), append(inFrom, false)
		case t.text == ")":
			if d > 0 {
				opener, inFrom = opener[:d], inFrom[:d]
			}
		case t.text == "," && inFrom[d]:
			i = readRef(toks, i+1, add) - 1
		case kw == "FROM" || kw == "JOIN":
			if inFunction(opener[d]) || distinctFrom(toks, i) {
				continue
			}
			inFrom[d] = kw == "FROM" || inFrom[d]
			i = readRef(toks, i+1, add) - 1
		case clauseEnd[kw]:
			inFrom[d] = false
		}
	}
	return out
}

// clauseEnd are the words that end a FROM clause.
var clauseEnd = map[string]bool{
	"WHERE": true, "GROUP": true, "HAVING": true, "ORDER": true, "LIMIT": true, "OFFSET": true,
	"UNION": true, "EXCEPT": true, "INTERSECT": true, "MINUS": true, "WINDOW": true, "QUALIFY": true,
	"SELECT": true, "FETCH": true, "ON": true, "USING": true,
}

// inFunction reports functions whose arguments use the word FROM.
func inFunction(w string) bool {
	switch w {
	case "EXTRACT", "SUBSTRING", "SUBSTR", "TRIM", "OVERLAY", "POSITION":
		return true
	}
	return false
}

// distinctFrom reports the FROM of "IS [NOT] DISTINCT FROM".
func distinctFrom(toks []token, i int) bool {
	return i > 0 && toks[i-1].keyword() == "DISTINCT"
}

// readRef reads a table reference at toks[i] and returns the index after
// it. A subquery, VALUES or a function call is read as usual by the caller.
func readRef(toks []token, i int, found func(Relation)) int {
	if i < len(toks) && (toks[i].keyword() == "LATERAL" || toks[i].keyword() == "ONLY") {
		i++
	}
	if i >= len(toks) || !toks[i].name() || reserved[toks[i].keyword()] && !toks[i].quoted() {
		return i
	}
	var r Relation
	for {
		r.Parts = append(r.Parts, toks[i].unquoted())
		r.Quoted = append(r.Quoted, toks[i].quoted())
		i++
		if i+1 < len(toks) && toks[i].text == "." && toks[i+1].name() {
			i++
			continue
		}
		break
	}
	if i < len(toks) && toks[i].text == "(" {
		return i // a function: its arguments are read as usual
	}
	found(r)
	return skipAlias(toks, i)
}

// skipAlias skips "[AS] alias [(columns)]".
func skipAlias(toks []token, i int) int {
	if i < len(toks) && toks[i].keyword() == "AS" {
		i++
	}
	if i < len(toks) && toks[i].name() && (toks[i].quoted() || !reserved[toks[i].keyword()]) {
		i++
		if i < len(toks) && toks[i].text == "(" {
			for depth := 0; i < len(toks); i++ {
				if toks[i].text == "(" {
					depth++
				} else if toks[i].text == ")" {
					depth--
					if depth == 0 {
						return i + 1
					}
				}
			}
		}
	}
	return i
}

// reserved are the words that may follow a table reference and are not
// an alias.
var reserved = map[string]bool{
	"WHERE": true, "GROUP": true, "ORDER": true, "LIMIT": true, "OFFSET": true, "HAVING": true,
	"JOIN": true, "INNER": true, "LEFT": true, "RIGHT": true, "FULL": true, "CROSS": true,
	"NATURAL": true, "ON": true, "USING": true, "UNION": true, "EXCEPT": true, "INTERSECT": true,
	"MINUS": true, "WINDOW": true, "QUALIFY": true, "FETCH": true, "FOR": true, "TABLESAMPLE": true,
	"SAMPLE": true, "AT": true, "BEFORE": true, "CHANGES": true, "PIVOT": true, "UNPIVOT": true,
	"MATCH_RECOGNIZE": true, "SELECT": true, "FROM": true, "OUTER": true, "AS": true, "WITH": true,
}

// cteNames finds "name AS (" and "name (columns) AS (", the CTEs of WITH.
func cteNames(toks []token) map[string]bool {
	names := map[string]bool{}
	for i := 0; i+2 < len(toks); i++ {
		if !toks[i].name() {
			continue
		}
		j := i + 1
		if toks[j].text == "(" {
			for depth := 0; j < len(toks); j++ {
				if toks[j].text == "(" {
					depth++
				} else if toks[j].text == ")" {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			j++
		}
		if j+1 >= len(toks) || toks[j].keyword() != "AS" {
			continue
		}
		k := j + 1
		for k < len(toks) && (toks[k].keyword() == "NOT" || toks[k].keyword() == "MATERIALIZED") {
			k++
		}
		if k < len(toks) && toks[k].text == "(" {
			names[strings.ToLower(toks[i].unquoted())] = true
		}
	}
	return names
}

// token is a word, a quoted identifier ("x" or `x`) or one punctuation
// character. Comments and string literals are dropped.
type token struct{ text string }

func (t token) quoted() bool {
	return len(t.text) >= 2 && (t.text[0] == '"' || t.text[0] == '`')
}

func (t token) word() bool {
	r := []rune(t.text)
	return len(r) > 0 && (unicode.IsLetter(r[0]) || r[0] == '_')
}

// name reports a token that can name a relation.
func (t token) name() bool { return t.quoted() || t.word() }

// keyword is the upper-cased word, or "" for other tokens.
func (t token) keyword() string {
	if !t.word() {
		return ""
	}
	return strings.ToUpper(t.text)
}

// unquoted strips the quotes and undoubles quotes inside them.
func (t token) unquoted() string {
	if !t.quoted() {
		return t.text
	}
	q := t.text[:1]
	return strings.ReplaceAll(t.text[1:len(t.text)-1], q+q, q)
}

func tokenize(sql string) []token {
	var toks []token
	r := []rune(sql)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '-' && i+1 < len(r) && r[i+1] == '-':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(r) && r[i+1] == '*':
			i += 2
			for i+1 < len(r) && !(r[i] == '*' && r[i+1] == '/') {
				i++
			}
			i += 2
		case c == '\'' || c == '"' || c == '`':
			j := closing(r, i)
			if c != '\'' {
				toks = append(toks, token{string(r[i:j])})
			}
			i = j
		case unicode.IsLetter(c) || c == '_':
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_' || r[j] == '$') {
				j++
			}
			toks = append(toks, token{string(r[i:j])})
			i = j
		case unicode.IsDigit(c):
			for i < len(r) && (unicode.IsDigit(r[i]) || r[i] == '.') {
				i++
			}
		default:
			toks = append(toks, token{string(c)})
			i++
		}
	}
	return toks
}

// closing returns the index after the quote closing the one at r[i]; a
// doubled quote is part of the text.
func closing(r []rune, i int) int {
	q := r[i]
	for j := i + 1; j < len(r); j++ {
		if r[j] != q {
			continue
		}
		if j+1 < len(r) && r[j+1] == q {
			j++
			continue
		}
		return j + 1
	}
	return len(r)
}
