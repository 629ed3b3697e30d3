// Package sftest is a local Snowflake: an HTTP server speaking the REST
// protocol that Snowflake's drivers use, backed by DuckDB executing the SQL.
// Tests drive Ebb's Snowflake source through the real driver
// (github.com/snowflakedb/gosnowflake) against it.
//
// It implements the endpoints and shapes the driver relies on, and keeps to
// them: it is a stand-in for the service, not a mock of Ebb.
//   - POST /session/v1/login-request: password or key-pair (JWT) login;
//     bad credentials answer code 390100, a bad JWT 390144.
//   - POST /queries/v1/query-request: runs sqlText with its bindings (or
//     only describes it, describeOnly) and answers in the JSON result format:
//     rowtype (Snowflake type names, precision, scale) and a rowset of text
//     cells. Results longer than the chunk size carry the rest in "chunks",
//     served gzip'd by GET /chunks/... and guarded by "chunkHeaders", as the
//     cloud storage that serves them for Snowflake is. Bindings are typed
//     as the driver sends them (FIXED, REAL, BOOLEAN, TEXT, and BINARY in
//     hex); DML answers one row of counts (number of rows inserted, ...),
//     other statements a status row.
//   - SHOW GRANTS TO ROLE name, answered from the grants SetGrants gives
//     (unknown roles fail as Snowflake's 002003), and SELECT CURRENT_ROLE(),
//     the login's role (PUBLIC when none).
//   - POST /queries/v1/abort-request and POST /session?delete=true.
//   - Errors: HTTP 200 with success false, Snowflake's error code, message
//     and sqlState (002003 for a missing object, 001003 for a syntax
//     error, ...), which the driver turns into *gosnowflake.SnowflakeError.
//
// The account has one database, Database: the DuckDB database, whose
// catalog bears its name, so DATABASE.SCHEMA.TABLE names resolve in it. Its
// schemas are DuckDB's, unqualified names resolve in DuckDB's "main" schema
// whatever the session's schema, and INFORMATION_SCHEMA is DuckDB's.
//
// What it does not do: identifier case folding (names stay as written, where
// Snowflake upper-cases unquoted ones), multi-statement requests, async
// queries, file transfer, other databases (every session sees the one),
// Time Travel and Fail-safe (TRANSIENT tables are plain tables). The SQL is
// DuckDB's, with the few Snowflake spellings Ebb's source emits translated
// (see dialect.go).
package sftest

import (
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/source/duckdb"
)

// Default account, credentials and database of a new server.
const (
	Account  = "ebbtest"
	User     = "EBB"
	Password = "ebb-test-password"
	Database = "EBB"
)

// Server is a local Snowflake account.
type Server struct {
	// URL is the server's base URL; Host and Port are its parts.
	URL  string
	Host string
	Port int
	// DB is the DuckDB database that executes the SQL. Tests may prepare
	// data through it directly.
	DB *sql.DB

	chunkRows int
	chunkKey  string
	http      *httptest.Server

	mu       sync.Mutex
	users    map[string]user     // by upper-case login name
	sessions map[string]*session // by session token
	results  map[string]*result  // by query id, while chunks may be fetched
	grants   map[string][]Grant  // by upper-case role name (SetGrants)
	nextID   int64

	chunkGets atomic.Int64
	logins    atomic.Int64
}

type user struct {
	password  string
	publicKey *rsa.PublicKey
}

type session struct {
	id      int64
	user    string
	role    string
	results []string
}

// result holds the chunks of a query result that did not fit its response.
type result struct {
	chunks [][]byte // gzip'd chunk bodies
}

// Option configures a Server.
type Option func(*Server)

// WithChunkRows sets how many rows a response carries inline and each chunk
// holds after that (1000 by default).
func WithChunkRows(n int) Option { return func(s *Server) { s.chunkRows = n } }

// New starts a server with one user (User, Password) on a fresh DuckDB
// database file, stopped when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	// DuckDB names the catalog after the file.
	db, release, err := duckdb.DB(filepath.Join(t.TempDir(), Database+".duckdb"))
	require.NoError(t, err)
	for _, q := range macros {
		if _, err := db.Exec(q); err != nil {
			release()
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := &Server{
		DB:        db,
		chunkRows: 1000,
		chunkKey:  randomHex(16),
		users:     map[string]user{User: {password: Password}},
		sessions:  map[string]*session{},
		results:   map[string]*result{},
	}
	for _, o := range opts {
		o(s)
	}
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.http.Close()
		release()
	})
	s.URL = s.http.URL
	host, port, err := net.SplitHostPort(s.http.Listener.Addr().String())
	require.NoError(t, err)
	s.Host = host
	s.Port, err = strconv.Atoi(port)
	require.NoError(t, err)
	return s
}

// Config is an Ebb source config that reaches this server as User.
func (s *Server) Config() map[string]any {
	return map[string]any{
		"account":   Account,
		"user":      User,
		"password":  Password,
		"role":      "EBB_READER",
		"warehouse": "EBB_WH",
		"database":  Database,
		"schema":    "PUBLIC",
		"protocol":  "http",
		"host":      s.Host,
		"port":      s.Port,
	}
}

// AddKeyUser adds a user who logs in with a key pair.
func (s *Server) AddKeyUser(name string, key *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToUpper(name)] = user{publicKey: key}
}

// ChunkGets counts the chunk downloads served so far.
func (s *Server) ChunkGets() int64 { return s.chunkGets.Load() }

// Logins counts the successful logins so far.
func (s *Server) Logins() int64 { return s.logins.Load() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/session/v1/login-request":
		s.login(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/queries/v1/query-request":
		s.query(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/queries/v1/abort-request":
		// Queries run to completion before their response: nothing runs
		// to abort by the time the driver asks.
		writeJSON(w, map[string]any{"success": true, "code": nil, "message": nil, "data": nil})
	case r.Method == http.MethodPost && r.URL.Path == "/session" && r.URL.Query().Get("delete") == "true":
		s.logout(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/chunks/"):
		s.chunk(w, r)
	default:
		http.Error(w, "no such endpoint", http.StatusNotFound)
	}
}

// readBody decodes a JSON request body, gzip'd or not.
func readBody(r *http.Request, v any) error {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return err
		}
		body = zr
	}
	return json.NewDecoder(body).Decode(v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// sfError is an error answer in Snowflake's shape.
type sfError struct {
	code, sqlState, message string
}

func writeError(w http.ResponseWriter, e sfError, queryID string) {
	writeJSON(w, map[string]any{
		"success": false,
		"code":    e.code,
		"message": e.message,
		"data":    map[string]any{"sqlState": e.sqlState, "queryId": queryID, "errorCode": e.code},
	})
}

// sessionOf finds the session of a request's `Snowflake Token="..."`.
func (s *Server) sessionOf(r *http.Request) (string, *session) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), `Snowflake Token="`)
	token = strings.TrimSuffix(token, `"`)
	s.mu.Lock()
	defer s.mu.Unlock()
	return token, s.sessions[token]
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	token, sess := s.sessionOf(r)
	if sess != nil {
		s.mu.Lock()
		delete(s.sessions, token)
		for _, id := range sess.results {
			delete(s.results, id)
		}
		s.mu.Unlock()
	}
	writeJSON(w, map[string]any{"success": true, "code": nil, "message": nil, "data": nil})
}

// chunk serves one gzip'd chunk of a result. Like Snowflake's presigned
// cloud storage URLs, it requires the headers the query response named.
func (s *Server) chunk(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(chunkKeyHeader) != s.chunkKey {
		http.Error(w, "AccessDenied", http.StatusForbidden)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/chunks/"), "/")
	if len(parts) != 2 {
		http.NotFound(w, r)
		return
	}
	n, err := strconv.Atoi(parts[1])
	s.mu.Lock()
	res := s.results[parts[0]]
	s.mu.Unlock()
	if err != nil || res == nil || n < 0 || n >= len(res.chunks) {
		http.NotFound(w, r)
		return
	}
	s.chunkGets.Add(1)
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(res.chunks[n])
}

// chunkKeyHeader is the SSE-C header S3 checks on Snowflake's result chunks.
const chunkKeyHeader = "x-amz-server-side-encryption-customer-key"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// queryID renders a query id in Snowflake's form.
func queryID() string {
	h := randomHex(16)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}
