package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Principal is who makes a request.
type Principal struct {
	// Subject is the key's subject, or "local" without authentication.
	Subject string
	// KeyID is the API key's ID; empty without authentication.
	KeyID  string
	Scopes []Scope
	// Via is how the request was authenticated: "key" (a bearer token),
	// "session" (a browser session), or "local" (no authentication).
	Via string
}

// Has reports whether the principal holds scope.
func (p *Principal) Has(scope Scope) bool { return p != nil && hasScope(p.Scopes, scope) }

type contextKey struct{ name string }

var (
	principalKey = &contextKey{"principal"}
	requestIDKey = &contextKey{"request-id"}
	sessionKey   = &contextKey{"session"}
)

// PrincipalFrom returns the request's authenticated principal, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey).(*Principal)
	return p
}

// RequestID returns the request's ID, as sent back in X-Request-Id.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// localPrincipal acts for every request when the server has no key store.
var localPrincipal = Principal{Subject: "local", Scopes: []Scope{ScopeAdmin}, Via: "local"}

// authenticate finds the request's principal: from a bearer token, or
// from a browser session cookie when cookieOK. It returns nil, nil when
// the request carries no credentials.
func (s *Server) authenticate(r *http.Request, cookieOK bool) (*Principal, error) {
	if s.cfg.Keys == nil {
		p := localPrincipal
		return &p, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, ErrInvalidKey
		}
		k, err := s.cfg.Keys.Authenticate(r.Context(), strings.TrimSpace(token))
		if err != nil {
			return nil, err
		}
		return &Principal{Subject: k.Subject, KeyID: k.ID, Scopes: k.Scopes, Via: "key"}, nil
	}
	if cookieOK {
		if c, err := r.Cookie(sessionCookie); err == nil {
			keyID, ok := s.verifySession(c.Value)
			if !ok {
				return nil, nil
			}
			k, err := s.cfg.Keys.Get(r.Context(), keyID)
			if errors.Is(err, ErrKeyNotFound) || (err == nil && !k.RevokedAt.IsZero()) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			return &Principal{Subject: k.Subject, KeyID: k.ID, Scopes: k.Scopes, Via: "session"}, nil
		}
	}
	return nil, nil
}

// auth requires a principal with scope on an API route: a bearer token,
// or a browser session for reading.
func (s *Server) auth(scope Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			safe := r.Method == http.MethodGet || r.Method == http.MethodHead
			p, err := s.authenticate(r, safe)
			switch {
			case errors.Is(err, ErrInvalidKey):
				s.problem(w, r, &Problem{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Detail: "the API key is invalid or revoked"})
				return
			case err != nil:
				s.internal(w, r, err)
				return
			case p == nil:
				s.problem(w, r, &Problem{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Detail: "send an API key as Authorization: Bearer keel_…"})
				return
			case !p.Has(scope):
				s.problem(w, r, &Problem{Status: http.StatusForbidden, Code: CodeForbidden, Detail: "this key lacks the " + string(scope) + " scope"})
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
		})
	}
}

// loopbackOnlyWithoutKeys refuses requests from other hosts when the
// server has no key store, whatever address it listens on. It also
// refuses requests addressed to a name other than a loopback one (or
// Config.BaseURL's host): a web page whose DNS name its author points at
// 127.0.0.1 (DNS rebinding) reaches the server from the victim's browser
// over a loopback connection, as a same-origin request that reads the
// answers.
func (s *Server) loopbackOnlyWithoutKeys(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Keys == nil && (!isLoopbackHost(r.RemoteAddr) || !s.localHostHeader(r.Host)) {
			s.problem(w, r, &Problem{Status: http.StatusForbidden, Code: CodeForbidden,
				Detail: "this server has no API keys: it serves only loopback clients that address it as localhost or a loopback IP"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localHostHeader reports whether a request's Host names this machine:
// empty (HTTP/1.0), a loopback name or IP, or Config.BaseURL's host.
func (s *Server) localHostHeader(host string) bool {
	if host == "" || isLoopbackHost(host) {
		return true
	}
	if s.cfg.BaseURL == "" {
		return false
	}
	u, err := url.Parse(s.cfg.BaseURL)
	return err == nil && strings.EqualFold(host, u.Host)
}

// Browser sessions: a cookie holding the key ID and an expiry, signed
// with the session secret. The key is looked up on every request, so a
// revoked key ends its sessions at once.
const sessionCookie = "keel_session"

func (s *Server) sign(parts ...string) string {
	m := hmac.New(sha256.New, s.secret)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) newSession(keyID string) string {
	exp := strconv.FormatInt(time.Now().Add(s.cfg.SessionTTL).Unix(), 10)
	return keyID + "." + exp + "." + s.sign("session", keyID, exp)
}

func (s *Server) verifySession(v string) (keyID string, ok bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", false
	}
	if !hmac.Equal([]byte(parts[2]), []byte(s.sign("session", parts[0], parts[1]))) {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || time.Now().Unix() >= exp {
		return "", false
	}
	return parts[0], true
}

// csrfToken is the token forms bound to binding (a session, a review
// link, the local operator or a login attempt) must carry.
func (s *Server) csrfToken(binding string) string {
	return s.sign("csrf", binding)[:32]
}

func (s *Server) checkCSRF(r *http.Request, binding string) bool {
	got := r.PostFormValue("csrf_token")
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrfToken(binding)))
}

// sessionBinding returns what a page's CSRF token is bound to.
func sessionBinding(r *http.Request) string {
	if b, ok := r.Context().Value(sessionKey).(string); ok {
		return b
	}
	return "local"
}

// page requires a principal with scope on a page for people: a browser
// session (or a bearer token). Without one, a GET is sent to the login
// page.
func (s *Server) page(scope Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := s.authenticate(r, true)
			if err != nil && !errors.Is(err, ErrInvalidKey) {
				s.internal(w, r, err)
				return
			}
			if p == nil {
				if r.Method == http.MethodGet || r.Method == http.MethodHead {
					http.Redirect(w, r, "/ui/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				s.errorPage(w, r, http.StatusUnauthorized, "Sign in first", "Your session has ended. Sign in again and repeat the action.")
				return
			}
			if !p.Has(scope) {
				s.errorPage(w, r, http.StatusForbidden, "Not allowed", "Your key lacks the "+string(scope)+" scope.")
				return
			}
			ctx := context.WithValue(r.Context(), principalKey, p)
			binding := "local"
			if c, err := r.Cookie(sessionCookie); err == nil && p.Via == "session" {
				binding = "session|" + c.Value
			} else if p.Via == "key" {
				binding = "key|" + p.KeyID
			}
			ctx = context.WithValue(ctx, sessionKey, binding)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// remoteIP returns the client address without its port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
