package ui

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// cookieName holds the admin token in the browser once a ?token= URL has
// been opened, so links on the page work without carrying the token.
const cookieName = "ebb_admin_token"

// requireToken lets through requests that carry token as a bearer header,
// a cookie or a ?token= parameter; the parameter sets the cookie and
// redirects to the same page without it, so the token leaves the address
// bar and the history. An empty token lets everything through.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Has("token") {
			if !equal(q.Get("token"), token) {
				unauthorized(w)
				return
			}
			setCookie(w, r, token)
			q.Del("token")
			// Not http.Redirect: it would make the reference absolute
			// from the stripped path, losing the mount prefix.
			w.Header().Set("Location", self(r.URL.Path, q))
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		if !equal(bearer(r), token) && !equal(cookie(r), token) {
			unauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// equal compares in constant time; an empty value never matches.
func equal(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func cookie(r *http.Request) string {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

func setCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: token, Path: mountPath(r),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// mountPath is the path the handler is mounted at, with a trailing slash:
// the part of the request's path that http.StripPrefix removed.
func mountPath(r *http.Request) string {
	full, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return "/"
	}
	prefix, ok := strings.CutSuffix(full.Path, strings.TrimPrefix(r.URL.Path, "/"))
	if !ok || !strings.HasPrefix(prefix, "/") {
		return "/"
	}
	return strings.TrimSuffix(prefix, "/") + "/"
}

// self is a relative reference to the page at p with query q, valid
// wherever the handler is mounted.
func self(p string, q url.Values) string {
	ref := "./"
	if !strings.HasSuffix(p, "/") {
		ref += path.Base(p)
	}
	if len(q) > 0 {
		ref += "?" + q.Encode()
	}
	return ref
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="ebb"`)
	http.Error(w, "This page needs the admin token: send it as \"Authorization: Bearer TOKEN\", "+
		"or open the page once with ?token=TOKEN in its address.", http.StatusUnauthorized)
}
