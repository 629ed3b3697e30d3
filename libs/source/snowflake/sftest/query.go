package sftest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// queryRequest is the body of /queries/v1/query-request.
type queryRequest struct {
	SQLText      string `json:"sqlText"`
	DescribeOnly bool   `json:"describeOnly"`
	Bindings     map[string]struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	} `json:"bindings"`
}

// Statement type ids of Snowflake's responses (the driver reads DML counts
// by them).
const (
	stmtSelect = 0x1000
	stmtDML    = 0x3000
	stmtDDL    = 0x6000
)

var dmlTypes = map[string]struct {
	id     int
	column string
}{
	"INSERT": {stmtDML + 0x100, "number of rows inserted"},
	"UPDATE": {stmtDML + 0x200, "number of rows updated"},
	"DELETE": {stmtDML + 0x300, "number of rows deleted"},
	"MERGE":  {stmtDML + 0x400, "number of rows updated"},
}

// answer is a successful statement's result.
type answer struct {
	rowtype []rowType
	rows    [][]*string
	stmt    int
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	token, sess := s.sessionOf(r)
	if sess == nil {
		writeError(w, errNoSession, "")
		return
	}
	var req queryRequest
	if err := readBody(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := queryID()
	a, e, ok := s.metadata(sess, req.SQLText)
	if !ok {
		a, e = s.execute(r.Context(), req)
	}
	if e != nil {
		writeError(w, *e, id)
		return
	}
	data, err := s.respond(token, id, a)
	if err != nil {
		writeError(w, sfError{"000603", "XX000", err.Error()}, id)
		return
	}
	writeJSON(w, map[string]any{"success": true, "code": nil, "message": nil, "data": data})
}

func (s *Server) execute(ctx context.Context, req queryRequest) (*answer, *sfError) {
	sqlText := translate(strings.TrimRight(strings.TrimSpace(req.SQLText), "; \t\r\n"))
	args, err := bindArgs(req)
	if err != nil {
		return nil, &sfError{"002049", "22000", err.Error()}
	}
	kind := statementKind(sqlText)
	switch {
	case kind == "query":
		return s.selectRows(ctx, sqlText, args, req.DescribeOnly)
	case kind == "session":
		// Session parameters do not change how DuckDB runs the SQL.
		return statusAnswer(), nil
	case req.DescribeOnly:
		return &answer{stmt: stmtDDL}, nil
	}
	res, err := s.DB.ExecContext(ctx, sqlText, args...)
	if err != nil {
		e := sqlError(err)
		return nil, &e
	}
	dml, ok := dmlTypes[kind]
	if !ok {
		return statusAnswer(), nil
	}
	n, _ := res.RowsAffected()
	count := strconv.FormatInt(n, 10)
	return &answer{
		rowtype: []rowType{{Name: dml.column, Type: "fixed", Precision: 38, Nullable: false}},
		rows:    [][]*string{{&count}},
		stmt:    dml.id,
	}, nil
}

func statusAnswer() *answer {
	msg := "Statement executed successfully."
	return &answer{
		rowtype: []rowType{{Name: "status", Type: "text", Length: 16777216, ByteLength: 16777216}},
		rows:    [][]*string{{&msg}},
		stmt:    stmtDDL,
	}
}

// bindArgs turns the request's bindings ("1", "2", ...; each cell's text
// and Snowflake type, BINARY in hex) into arguments for $1, $2, ...
func bindArgs(req queryRequest) ([]any, error) {
	names := make([]int, 0, len(req.Bindings))
	for k := range req.Bindings {
		n, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("named binding %q is not supported", k)
		}
		names = append(names, n)
	}
	sort.Ints(names)
	args := make([]any, len(names))
	for i, n := range names {
		if n != i+1 {
			return nil, fmt.Errorf("binding %d is missing", i+1)
		}
		b := req.Bindings[strconv.Itoa(n)]
		text, isText := b.Value.(string)
		switch {
		case b.Value == nil:
			args[i] = nil
		case !isText:
			return nil, fmt.Errorf("binding %d: value is not text", n)
		case b.Type == "FIXED":
			v, err := strconv.ParseInt(text, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("binding %d: %q is not a FIXED", n, text)
			}
			args[i] = v
		case b.Type == "REAL":
			v, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return nil, fmt.Errorf("binding %d: %q is not a REAL", n, text)
			}
			args[i] = v
		case b.Type == "BOOLEAN":
			args[i] = text == "true" || text == "1"
		case b.Type == "BINARY":
			v, err := hex.DecodeString(text)
			if err != nil {
				return nil, fmt.Errorf("binding %d: %q is not a BINARY in hex", n, text)
			}
			args[i] = v
		default:
			args[i] = text
		}
	}
	return args, nil
}

// selectRows runs a query and renders its result as Snowflake does. The
// query is described first (LIMIT 0) to learn its column types, then run
// wrapped so that nested values come out as JSON text.
func (s *Server) selectRows(ctx context.Context, q string, args []any, describeOnly bool) (*answer, *sfError) {
	cols, err := s.describe(ctx, q, args)
	if err != nil {
		e := sqlError(err)
		return nil, &e
	}
	a := &answer{stmt: stmtSelect, rowtype: make([]rowType, len(cols))}
	for i, c := range cols {
		a.rowtype[i] = c.rowType
	}
	if describeOnly {
		return a, nil
	}
	rows, err := s.DB.QueryContext(ctx, wrapped(q, cols), args...)
	if err != nil {
		e := sqlError(err)
		return nil, &e
	}
	defer rows.Close()
	cells := make([]any, len(cols))
	dest := make([]any, len(cols))
	for i := range cells {
		dest[i] = &cells[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			e := sqlError(err)
			return nil, &e
		}
		row := make([]*string, len(cols))
		for i, v := range cells {
			if row[i], err = cols[i].render(v); err != nil {
				return nil, &sfError{"000603", "XX000", fmt.Sprintf("rendering column %s: %v", cols[i].Name, err)}
			}
		}
		a.rows = append(a.rows, row)
	}
	if err := rows.Err(); err != nil {
		e := sqlError(err)
		return nil, &e
	}
	return a, nil
}

// describe returns the query's columns.
func (s *Server) describe(ctx context.Context, q string, args []any) ([]wireColumn, error) {
	rows, err := s.DB.QueryContext(ctx, "SELECT * FROM (\n"+q+"\n) AS sf_q LIMIT 0", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	cols := make([]wireColumn, len(types))
	for i, t := range types {
		cols[i] = wireColumnOf(t.Name(), t.DatabaseTypeName())
	}
	return cols, rows.Close()
}

// wrapped selects the query's columns by position, rendering those the
// driver cannot hand over natively as text.
func wrapped(q string, cols []wireColumn) string {
	aliases := make([]string, len(cols))
	exprs := make([]string, len(cols))
	for i, c := range cols {
		aliases[i] = fmt.Sprintf("c%d", i+1)
		exprs[i] = aliases[i]
		if c.expr != "" {
			exprs[i] = strings.ReplaceAll(c.expr, "$", aliases[i])
		}
	}
	return "SELECT " + strings.Join(exprs, ", ") + " FROM (\n" + q + "\n) AS sf_q(" + strings.Join(aliases, ", ") + ")"
}

// respond builds the response data: the first rows inline, the others in
// chunks kept for the session.
func (s *Server) respond(token, id string, a *answer) (map[string]any, error) {
	first := min(len(a.rows), s.chunkRows)
	rowset := a.rows[:first]
	if rowset == nil {
		rowset = [][]*string{}
	}
	data := map[string]any{
		"parameters":        []any{},
		"rowtype":           a.rowtype,
		"rowset":            rowset,
		"total":             len(a.rows),
		"returned":          first,
		"queryId":           id,
		"queryResultFormat": "json",
		"statementTypeId":   a.stmt,
		"version":           1,
	}
	if first == len(a.rows) {
		return data, nil
	}
	var res result
	var metas []map[string]any
	for start := first; start < len(a.rows); start += s.chunkRows {
		rows := a.rows[start:min(start+s.chunkRows, len(a.rows))]
		body, size, err := chunkBody(rows)
		if err != nil {
			return nil, err
		}
		metas = append(metas, map[string]any{
			"url":              fmt.Sprintf("%s/chunks/%s/%d", s.URL, id, len(res.chunks)),
			"rowCount":         len(rows),
			"uncompressedSize": size,
			"compressedSize":   len(body),
		})
		res.chunks = append(res.chunks, body)
	}
	s.mu.Lock()
	s.results[id] = &res
	if sess := s.sessions[token]; sess != nil {
		sess.results = append(sess.results, id)
	}
	s.mu.Unlock()
	data["chunks"] = metas
	data["chunkHeaders"] = map[string]string{
		"x-amz-server-side-encryption-customer-algorithm": "AES256",
		chunkKeyHeader: s.chunkKey,
	}
	return data, nil
}

// chunkBody renders rows as a chunk: JSON arrays separated by commas, with
// no enclosing brackets, gzip'd.
func chunkBody(rows [][]*string) ([]byte, int, error) {
	var raw bytes.Buffer
	for i, r := range rows {
		if i > 0 {
			raw.WriteByte(',')
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, 0, err
		}
		raw.Write(b)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return z.Bytes(), raw.Len(), nil
}
