// Package security holds Keel's security suite: tests that attack a real
// server (package server) over real HTTP, on a real SQLite file and, when
// TEST_DATABASE_URL is set, on a Postgres schema of their own (package
// internal/testdb). It has no code of its own; the suite is its tests, and
// every test is named TestSecurity*, so that
//
//	go test -run TestSecurity ./...
//
// runs the suite, and with the Postgres half:
//
//	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//		go test -race -run TestSecurity ./internal/security/
//
// Without TEST_DATABASE_URL the Postgres subtests are skipped with a
// message; under CI=true they fail instead.
//
// Each test runs a table of threats, one named subtest per threat, and
// checks both that the attack is refused (its typed error or HTTP status
// and problem code) and that it wrote nothing (no run started, the
// approval still pending with no vote):
//
//   - TestSecurityAPIAuth: no key, a malformed Authorization header, an
//     unknown key, a revoked key, a key without the needed scope, keys
//     stored only as hashes, the constant-time comparison paths, a server
//     without keys serving loopback clients only (and refusing requests
//     addressed to other names, as DNS rebinding sends), RFC 9457 problem
//     bodies that show nothing of the server's insides, and keys that are
//     never echoed or logged.
//   - TestSecurityBrowser: approval, review-link and sign-in forms without
//     their CSRF token or with another's, cross-origin posts, a session
//     cookie used against the API, a read-only session deciding, forged,
//     expired and revoked sessions, and the cookies' HttpOnly, SameSite and
//     Secure flags.
//   - TestSecurityApprovals: review links tampered with, expired, used
//     twice or made out for another approval, a reviewer outside the group,
//     the requester approving their own request, a decision on a closed or
//     timed-out approval, and a decision on other arguments than those
//     requested (the arguments hash binding).
//   - TestSecurityPayloadCodec: with durable.Config.Codec set, and the
//     same codec as hitl.Config.Codec, a secret carried through every kind
//     of workflow payload and through an approval (title, arguments, a
//     vote's comment and edited arguments) is found nowhere in the
//     database, table by table and, on SQLite, in the raw file and its
//     write-ahead log.
package security
