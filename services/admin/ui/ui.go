// Package ui serves the admin web page: the syncs, their runs with counts,
// and a run's failed records, rendered on the server from the same stores
// the admin gRPC API reads. It is read-only; changes go through the CLI.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/quarantine"
	"github.com/ebb-etl/ebb/libs/run"
)

// Deps is what the page reads.
type Deps struct {
	Configs *config.Store
	Runs    *run.Store
	// JS reads run failures (run.Failures) and, when State is nil, opens
	// the state bucket.
	JS jetstream.JetStream
	// State is the state bucket (sync pauses); when nil, it is opened from
	// JS on each request.
	State jetstream.KeyValue
	// Quarantine tracks records that keep failing; when nil, it is opened
	// on the state bucket.
	Quarantine *quarantine.Store
	// Token is the admin token every request must carry (Authorization:
	// Bearer, or ?token= once, which sets a cookie). Empty means no check.
	Token string
	// Log receives errors reading the stores; nothing is logged otherwise.
	Log zerolog.Logger
}

// Limits of what one page shows.
const (
	syncRunsLimit = 50
	failuresLimit = 500
)

//go:embed templates/*.html static/style.css
var files embed.FS

// pages are parsed once: each page template is the layout plus its body.
var pages = parsePages("syncs", "sync", "run", "live", "error")

func parsePages(names ...string) map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, n := range names {
		t := template.New("layout.html").Funcs(funcs)
		out[n] = template.Must(t.ParseFS(files, "templates/layout.html", "templates/"+n+".html"))
	}
	return out
}

// Handler serves the page with paths relative to where it is mounted: mount
// it with http.StripPrefix, as in
//
//	mux.Handle("/ui/", http.StripPrefix("/ui", ui.Handler(d)))
func Handler(d Deps) http.Handler {
	s := &server{d: d, live: &watches{m: map[string]*liveWatch{}}}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", s.html("syncs", s.syncs))
	mux.Handle("GET /syncs/{name}", s.html("sync", s.sync))
	mux.Handle("GET /runs/{id}", s.html("run", s.run))
	mux.Handle("GET /syncs/{name}/live", s.html("live", s.liveSync))
	mux.Handle("GET /api/syncs", s.json(s.syncs))
	mux.Handle("GET /api/syncs/{name}", s.json(s.sync))
	mux.Handle("GET /api/runs/{id}", s.json(s.run))
	static, _ := fs.Sub(files, "static")
	mux.Handle("GET /style.css", http.FileServerFS(static))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, notFound("no page at %s", r.URL.Path))
	})
	return headers(leadingSlash(requireToken(d.Token, mux)))
}

// server answers the page's requests.
type server struct {
	d    Deps
	live *watches
}

// loader reads what a page shows.
type loader func(r *http.Request) (any, error)

// statusError is an error the visitor sees as is, with its HTTP status.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func notFound(format string, args ...any) error {
	return &statusError{code: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// page is what the layout renders.
type page struct {
	Title string
	// Base is the relative path to the page's root ("./" or "../"), so
	// links work wherever the handler is mounted.
	Base string
	// Refresh, when not zero, reloads the page every so many seconds.
	Refresh int
	Data    any
}

// refresher is data that asks the page to reload itself while something
// is still moving.
type refresher interface{ refresh() int }

// titled is data that names its page.
type titled interface{ title() string }

func (s *server) html(name string, load loader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := load(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p := page{Title: "Ebb", Base: base(r.URL.Path), Data: data}
		if t, ok := data.(titled); ok {
			p.Title = t.title() + " · Ebb"
		}
		if rf, ok := data.(refresher); ok {
			p.Refresh = rf.refresh()
		}
		render(w, name, http.StatusOK, p)
	})
}

func (s *server) json(load loader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := load(r)
		code, msg := s.status(r, err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if err != nil {
			data = map[string]string{"error": msg}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(data)
	})
}

// fail renders err as a page; only statusErrors are shown as they are.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := s.status(r, err)
	render(w, "error", code, page{Title: http.StatusText(code) + " · Ebb", Base: base(r.URL.Path), Data: msg})
}

// status maps err to an HTTP status and the message the visitor reads.
// Store errors are logged and shown as a generic message, as they may
// name internals.
func (s *server) status(r *http.Request, err error) (int, string) {
	var se *statusError
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.As(err, &se):
		return se.code, se.msg
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "request cancelled"
	}
	s.d.Log.Error().Err(err).Str("path", r.URL.Path).Msg("admin web page failed")
	return http.StatusInternalServerError, "reading Ebb's state failed; the admin log says why"
}

func render(w http.ResponseWriter, name string, code int, p page) {
	var b strings.Builder
	if err := pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

// base returns the relative path from the page at path to the root.
func base(path string) string {
	depth := strings.Count(strings.TrimPrefix(path, "/"), "/")
	if depth == 0 {
		return "./"
	}
	return strings.Repeat("../", depth)
}

// leadingSlash puts back the slash a StripPrefix("/ui/") takes away, so the
// handler works with either form of mounting.
func leadingSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/") {
			r2 := *r
			u := *r.URL
			u.Path = "/" + u.Path
			u.RawPath = ""
			r2.URL = &u
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// headers keeps the page out of caches, frames and Referer headers (a
// ?token= URL must not leak), and allows no script at all.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// state returns the state bucket.
func (s *server) state(ctx context.Context) (jetstream.KeyValue, error) {
	if s.d.State != nil {
		return s.d.State, nil
	}
	kv, err := s.d.JS.KeyValue(ctx, bus.BucketState)
	if err != nil {
		return nil, fmt.Errorf("opening state bucket: %w", err)
	}
	return kv, nil
}

// quarantineOf returns q, or when nil the quarantine store on state.
func quarantineOf(state jetstream.KeyValue, q *quarantine.Store) *quarantine.Store {
	if q != nil {
		return q
	}
	return quarantine.New(state)
}
