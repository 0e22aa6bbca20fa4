package hitl_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"

	"github.com/keelhq/keel/appdb"
	"github.com/keelhq/keel/durable"
	"github.com/keelhq/keel/durable/durabletest"
	"github.com/keelhq/keel/durable/store/sqlitestore"
	"github.com/keelhq/keel/hitl"
	"github.com/keelhq/keel/internal/hitltest"
)

// fuzzNow is the time of the services FuzzVerifyLink builds. The seed
// tokens in testdata/fuzz/FuzzVerifyLink were signed with testSecret at
// this time, so the ones with a positive ttl are still valid when read.
var fuzzNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// linkService returns a Service with the given link key whose clock
// stands at now. Its engine is never started: VerifyLink and SignLink
// need neither the engine nor the database.
func linkService(tb testing.TB, key string, now time.Time) *hitl.Service {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "keel.db")
	st, err := sqlitestore.Open(path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	db, err := appdb.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	e, err := durable.New(st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := hitl.New(context.Background(), db, e, &hitl.Config{
		Groups:     testGroups(),
		LinkSecret: []byte(key),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Test:       hitl.TestConfig{Clock: durabletest.NewClock(now)},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// linkFieldMax is the longest approval ID or reviewer a review link can
// carry: VerifyLink refuses a token that claims a longer one.
const linkFieldMax = 1024

// FuzzVerifyLink checks review link tokens. A token the Service did not
// mint for the given claims (random text, a truncated, altered or
// re-encoded token, one signed with another key, an expired one) is
// refused with an error matching ErrInvalidLink and one of ErrLinkMalformed,
// ErrLinkForged or ErrLinkExpired; a minted token verifies to exactly the
// claims it was signed with.
func FuzzVerifyLink(f *testing.F) {
	svc := linkService(f, testSecret, fuzzNow)
	forger := linkService(f, "another-secret-0123456789abcdef-xyz", fuzzNow)
	// late shares svc's key; its clock is past every expiry SignLink
	// can write (now + at most 292 years).
	late := linkService(f, testSecret, fuzzNow.AddDate(300, 0, 0))

	f.Add("", "a-1", "lena", int64(time.Hour), uint16(0), byte(1))
	f.Add("not a token!", "a-1", "lena", int64(time.Minute), uint16(3), byte(0x80))
	f.Add(hitltest.SignLink(f, svc, "a-1", "lena", time.Hour), "", "", int64(0), uint16(60), byte(0x20))
	f.Add(hitltest.SignLink(f, forger, "a-1", "lena", time.Hour), "approval-7", "lars", int64(-time.Second), uint16(7), byte(0xff))
	f.Add(hitltest.SignLink(f, svc, "a-1", "lena", -time.Minute), "a-1", "lena", int64(time.Millisecond), uint16(1), byte(2))
	f.Add("AQ", "x", "é\x00\xff", int64(1<<63-1), uint16(65535), byte(4))
	f.Add("", strings.Repeat("i", linkFieldMax+1), "lena", int64(time.Hour), uint16(0), byte(1))
	f.Add("", "a-1", strings.Repeat("r", linkFieldMax), int64(time.Hour), uint16(9), byte(1))
	// 67 bytes: the last character carries 4 unused bits.
	f.Add("", "a-12", "lena", int64(time.Hour), uint16(0), byte(1))

	f.Fuzz(func(t *testing.T, token, approvalID, reviewer string, ttl int64, pos uint16, mask byte) {
		// Any text: refused with a typed error, or (only for a token
		// signed with svc's key) accepted in its one canonical form.
		claims, err := svc.VerifyLink(token)
		if err != nil {
			requireLinkError(t, err, "VerifyLink(%q)", token)
			if claims != (hitl.LinkClaims{}) {
				t.Fatalf("VerifyLink(%q) failed but returned claims %+v", token, claims)
			}
		} else {
			raw, derr := base64.RawURLEncoding.DecodeString(token)
			if derr != nil || base64.RawURLEncoding.EncodeToString(raw) != token {
				t.Fatalf("VerifyLink accepted %q, which is not the canonical base64url of a token", token)
			}
			checkMinted(t, svc, forger, late, token, claims, pos, mask)
		}
		if _, ferr := forger.VerifyLink(token); ferr != nil {
			requireLinkError(t, ferr, "VerifyLink(%q) with another key", token)
		} else if err == nil {
			t.Fatalf("both keys accept %q", token)
		}

		// A minted token.
		d := time.Duration(ttl)
		minted, err := svc.SignLink(approvalID, reviewer, d)
		if len(approvalID) > linkFieldMax || len(reviewer) > linkFieldMax {
			if !errors.Is(err, hitl.ErrInvalidInput) || minted != "" {
				t.Fatalf("SignLink for a %d-byte ID and a %d-byte reviewer: got %q, %v, want ErrInvalidInput", len(approvalID), len(reviewer), minted, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("SignLink(%q, %q, %v): %v", approvalID, reviewer, d, err)
		}
		if minted == hitltest.SignLink(t, svc, approvalID, reviewer, d) {
			t.Fatalf("two tokens for the same claims are equal: %q", minted)
		}
		got, err := svc.VerifyLink(minted)
		expires := time.UnixMilli(fuzzNow.Add(d).UnixMilli()).UTC()
		if !fuzzNow.Before(expires) {
			if !errors.Is(err, hitl.ErrLinkExpired) || !errors.Is(err, hitl.ErrInvalidLink) {
				t.Fatalf("a token with ttl %v: got %v, want ErrLinkExpired", d, err)
			}
			if got != (hitl.LinkClaims{}) {
				t.Fatalf("an expired token returned claims %+v", got)
			}
			return
		}
		if err != nil {
			t.Fatalf("VerifyLink(SignLink(%q, %q, %v)): %v", approvalID, reviewer, d, err)
		}
		if got.ApprovalID != approvalID || got.Reviewer != reviewer || !got.ExpiresAt.Equal(expires) {
			t.Fatalf("claims %+v, want approval %q, reviewer %q, expiry %v", got, approvalID, reviewer, expires)
		}
		checkMinted(t, svc, forger, late, minted, got, pos, mask)
	})
}

// checkMinted checks a token svc accepts with claims: it verifies again
// to the same claims, its nonce is 16 bytes of hex, the other key and the
// later clock refuse it, and no truncation, single-byte change or other
// encoding of it is accepted.
func checkMinted(t *testing.T, svc, forger, late *hitl.Service, token string, claims hitl.LinkClaims, pos uint16, mask byte) {
	t.Helper()
	again, err := svc.VerifyLink(token)
	if err != nil || again != claims {
		t.Fatalf("verifying %q again: %+v, then %+v, %v", token, claims, again, err)
	}
	if n, err := hex.DecodeString(claims.Nonce); err != nil || len(n) != 16 {
		t.Fatalf("nonce %q is not 16 bytes of hex", claims.Nonce)
	}
	if _, err := forger.VerifyLink(token); !errors.Is(err, hitl.ErrLinkForged) {
		t.Fatalf("another key: got %v, want ErrLinkForged", err)
	}
	if _, err := late.VerifyLink(token); !errors.Is(err, hitl.ErrLinkExpired) {
		t.Fatalf("past the expiry: got %v, want ErrLinkExpired", err)
	}

	// Single-byte changes: at every position of a token up to 160
	// characters; of a longer one, in the first and last 64 (the header and
	// the MAC) and at pos, so that the cost of an input stays linear in its
	// size and the fuzzer still reaches every position.
	if mask == 0 {
		mask = 1
	}
	b := []byte(token)
	for i := range b {
		if len(b) > 160 && i >= 64 && i < len(b)-64 && i != int(pos)%len(b) {
			continue
		}
		b[i] ^= mask
		if _, err := svc.VerifyLink(string(b)); err == nil {
			t.Fatalf("byte %d of %q changed (^%#x) to %q: accepted", i, token, mask, b)
		} else {
			requireLinkError(t, err, "byte %d changed", i)
		}
		b[i] ^= mask
	}

	// The last character replaced by any other of the alphabet: when the
	// length is not a multiple of 3 it carries unused low bits.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := len(b) - 1
	for i := range alphabet {
		if alphabet[i] == token[last] {
			continue
		}
		if _, err := svc.VerifyLink(token[:last] + alphabet[i:i+1]); err == nil {
			t.Fatalf("%q with its last character changed to %q: accepted", token, alphabet[i])
		}
	}

	// Truncated.
	n := int(pos) % len(token)
	if _, err := svc.VerifyLink(token[:n]); !errors.Is(err, hitl.ErrLinkMalformed) {
		t.Fatalf("truncated to %d bytes: got %v, want ErrLinkMalformed", n, err)
	}

	// The same bytes in another form.
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	at := int(pos) % (len(token) + 1)
	others := []string{
		base64.URLEncoding.EncodeToString(raw),
		base64.StdEncoding.EncodeToString(raw),
		base64.RawStdEncoding.EncodeToString(raw),
		token[:at] + "\n" + token[at:],
		token[:at] + "\r\n" + token[at:],
		token + "=",
		" " + token,
		token + "\x00",
	}
	for _, o := range others {
		if o == token {
			continue
		}
		if _, err := svc.VerifyLink(o); err == nil {
			t.Fatalf("%q, another form of %q, is accepted", o, token)
		} else {
			requireLinkError(t, err, "another form %q", o)
		}
	}
}

// requireLinkError fails unless err is one of VerifyLink's errors.
func requireLinkError(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if !errors.Is(err, hitl.ErrInvalidLink) {
		t.Fatalf(format+": error %v does not match ErrInvalidLink", append(args, err)...)
	}
	for _, want := range []error{hitl.ErrLinkMalformed, hitl.ErrLinkForged, hitl.ErrLinkExpired} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf(format+": error %v is none of ErrLinkMalformed, ErrLinkForged, ErrLinkExpired", append(args, err)...)
}

// costLimitMsg is what cel-go's error says when the cost limit stops an
// evaluation.
const costLimitMsg = "cost limit exceeded"

// FuzzPolicy compiles a rule from a fuzzed CEL condition and evaluates it
// on a fuzzed action and JSON arguments. A condition compiles or fails
// with a *CompileError; an evaluation never panics, gives the same result
// every time, fails with an *EvalError (with no rule named only when the
// arguments are not JSON), fails when the condition's value is not a bool,
// and stays within the cost limit: a condition whose least possible cost
// is above the limit fails, one whose greatest possible cost is within it
// is not stopped by the limit, and a lower limit never lets through what a
// higher one stops.
func FuzzPolicy(f *testing.F) {
	// est estimates costs in an environment declared like NewPolicy's.
	est, err := cel.NewEnv(
		cel.Variable("action", cel.StringType),
		cel.Variable("args", cel.DynType),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		f.Fatal(err)
	}
	items := `{"items": [` + strings.TrimSuffix(strings.Repeat(`{"qty": 1},`, 300), ",") + `]}`
	digits := `[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]`
	f.Add(`action == "refund" && args.amount > 500`, "refund", `{"amount": 750}`, uint32(0))
	f.Add(`action == "refund" && args.amount > 500`, "refund", `{"amount": "lots"}`, uint32(0))
	f.Add(`action == "refund" && args.amount > 500`, "refund", `{"amount":`, uint32(0))
	f.Add(`action in ["send_email", "delete_record"]`, "send_email", ``, uint32(1))
	f.Add(`action == "charge" && has(args.currency) && args.currency != "EUR"`, "charge", `{"currency": "USD"}`, uint32(5))
	f.Add(`args.flag`, "x", `{"flag": "yes"}`, uint32(0))
	f.Add(`args.flag`, "x", `{"flag": true}`, uint32(0))
	f.Add(`args.items.exists(i, i.qty > 10)`, "bulk", items, uint32(200))
	f.Add(digits+`.all(a, `+digits+`.all(b, `+digits+`.all(c, `+digits+`.all(d, `+digits+`.all(e, true)))))`, "x", `{}`, uint32(0))
	f.Add(`args.map(k, k)[0] == "a"`, "x", `{"a": 1, "b": 2, "c": 3}`, uint32(0))
	f.Add(`args.all(k, args[k] > 0)`, "x", `{"a": "s", "b": [], "c": 3}`, uint32(0))
	f.Add(`args.filter(k, k != "b") == ["a", "c"]`, "x", `{"c": 1, "b": 2, "a": 3}`, uint32(0))
	f.Add(`args.n == 9007199254740993 && args.f > 1.5`, "x", `{"n": 9007199254740993, "f": 1e400}`, uint32(0))
	f.Add(`size(args) > 1 // a comment`, "x", `[1, 2]`, uint32(0))
	f.Add(`1 / 0 == 1`, "x", `null`, uint32(0))
	f.Add(`action + "!"`, "x", `{}`, uint32(0))
	f.Add(``, "x", `{}`, uint32(0))

	f.Fuzz(func(t *testing.T, when, action, args string, limit uint32) {
		rule := hitl.Rule{Name: "fuzz", When: when, Group: "g"}
		cost := uint64(limit) % (hitl.DefaultPolicyCostLimit + 1)
		if cost == 0 {
			cost = hitl.DefaultPolicyCostLimit
		}
		p, err := hitl.NewPolicy([]hitl.Rule{rule}, &hitl.PolicyConfig{CostLimit: cost})
		if err != nil {
			var ce *hitl.CompileError
			if !errors.Is(err, hitl.ErrPolicyCompile) || !errors.As(err, &ce) || ce.Rule != "fuzz" {
				t.Fatalf("NewPolicy(%q): %v (%T), want a *CompileError for rule fuzz", when, err, err)
			}
			return
		}
		if len(p.Rules()) != 1 || p.Rules()[0].Required != 1 {
			t.Fatalf("rules %+v", p.Rules())
		}

		m, ok, err := p.Match(action, json.RawMessage(args))
		for range 3 {
			m2, ok2, err2 := p.Match(action, json.RawMessage(args))
			if m != m2 || ok != ok2 || errText(err) != errText(err2) {
				t.Fatalf("%q on %q: (%+v, %v, %v), then (%+v, %v, %v)", when, args, m, ok, err, m2, ok2, err2)
			}
		}
		argsJSON := strings.TrimSpace(args) == "" || json.Valid([]byte(args))
		if err != nil {
			var ee *hitl.EvalError
			if !errors.Is(err, hitl.ErrPolicyEval) || !errors.As(err, &ee) {
				t.Fatalf("Match: %v (%T), want an *EvalError", err, err)
			}
			if ok || m != (hitl.Match{}) {
				t.Fatalf("Match failed with %v but returned (%+v, %v)", err, m, ok)
			}
			if (ee.Rule == "") == argsJSON || (ee.Rule != "" && ee.Rule != "fuzz") {
				t.Fatalf("args %q (JSON: %v): error names rule %q: %v", args, argsJSON, ee.Rule, err)
			}
		} else {
			if !argsJSON {
				t.Fatalf("args %q are not JSON, yet Match succeeded", args)
			}
			if ok != (m == hitl.Match{Rule: "fuzz", Group: "g", Required: 1}) || (!ok && m != hitl.Match{}) {
				t.Fatalf("Match returned (%+v, %v)", m, ok)
			}
		}

		// The value's type, by a second rule around the same condition:
		// the newline ends a // comment the condition may close with.
		// Its limit leaves room for the type() call.
		typeRule := hitl.Rule{Name: "type", When: "type(" + when + "\n) != bool", Group: "g"}
		if q, qerr := hitl.NewPolicy([]hitl.Rule{typeRule}, &hitl.PolicyConfig{CostLimit: cost + 100}); qerr == nil {
			_, notBool, terr := q.Match(action, json.RawMessage(args))
			if err == nil && (terr != nil || notBool) {
				t.Fatalf("%q on %q matched (%v) though its value is not a bool (%v)", when, args, ok, terr)
			}
			// (Unless the limit stopped the condition before its value.)
			if terr == nil && notBool && (err == nil || !strings.Contains(err.Error(), "not bool") && !strings.Contains(err.Error(), costLimitMsg)) {
				t.Fatalf("%q on %q yields a non-bool, yet Match gave %v", when, args, err)
			}
		}

		// The cost limit stops exactly the evaluations that cost more, as
		// cel-go's runtime charges them (measured on the same input, under
		// the default limit). cel-go's static estimate bounds that cost
		// from below only: the runtime charges a field selection on args
		// one more than the estimate does (args.n: 1 estimated, 2 charged).
		checked, iss := est.Compile(when)
		if iss.Err() != nil {
			t.Fatalf("%q compiles in NewPolicy but not in the same environment: %v", when, iss.Err())
		}
		if argsJSON {
			bounds, eerr := est.EstimateCost(checked, noSizes{})
			if eerr != nil {
				t.Fatal(eerr)
			}
			stopped := err != nil && strings.Contains(err.Error(), costLimitMsg)
			if bounds.Min > cost && err == nil {
				t.Fatalf("%q costs at least %d, above the limit %d, yet evaluated to %v", when, bounds.Min, cost, ok)
			}
			if actual, known := actualCost(t, est, checked, action, args); known {
				if actual <= cost && stopped {
					t.Fatalf("%q costs %d, within the limit %d, yet: %v", when, actual, cost, err)
				}
				if actual > cost && !stopped {
					t.Fatalf("%q costs %d, above the limit %d, yet gave (%v, %v)", when, actual, cost, ok, err)
				}
			}
		}
		if cost < hitl.DefaultPolicyCostLimit {
			hi, herr := hitl.NewPolicy([]hitl.Rule{rule}, nil)
			if herr != nil {
				t.Fatalf("%q compiles with limit %d but not with the default: %v", when, cost, herr)
			}
			// What the lower limit lets through, the default lets through
			// with the same result.
			hm, hok, herr := hi.Match(action, json.RawMessage(args))
			if err == nil && (herr != nil || hm != m || hok != ok) {
				t.Fatalf("%q: limit %d gives (%v, %v), the default limit (%v, %v)", when, cost, ok, err, hok, herr)
			}
		}
	})
}

// actualCost evaluates checked on action and args as Match would, under
// the default cost limit, and returns the cost cel-go charged; known is
// false when the arguments do not decode or cel-go panics.
func actualCost(t *testing.T, env *cel.Env, checked *cel.Ast, action, args string) (cost uint64, known bool) {
	t.Helper()
	defer func() {
		if recover() != nil { // Match recovers cel-go's panics too
			cost, known = 0, false
		}
	}()
	vars, err := hitl.DecodeArgs(json.RawMessage(args))
	if err != nil {
		return 0, false
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptTrackCost), cel.CostLimit(hitl.DefaultPolicyCostLimit))
	if err != nil {
		t.Fatal(err)
	}
	_, det, _ := prg.Eval(map[string]any{"action": action, "args": vars})
	if det == nil || det.ActualCost() == nil {
		return 0, false
	}
	return *det.ActualCost(), true
}

// noSizes knows nothing of the arguments' sizes and no custom function
// costs: the estimate is cel-go's own.
type noSizes struct{}

func (noSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }
func (noSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
