package sendgridfake_test

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/keelhq/keel/tools/email/sendgridfake"
)

// The server accepts the v3 mail send request shape and counts messages by
// their custom_args key; it refuses a request that lacks what SendGrid
// requires.
func Example() {
	s := sendgridfake.NewServer()
	defer s.Close()
	send := func(body string) int {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v3/mail/send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+sendgridfake.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println(send(`{"personalizations":[{"to":[{"email":"ada@example.com"}]}],
		"from":{"email":"support@example.com"},"subject":"Hi",
		"content":[{"type":"text/plain","value":"Hello"}],
		"custom_args":{"keel_idempotency_key":"k1"}}`))
	fmt.Println(send(`{"personalizations":[{"to":[]}],"from":{"email":"support@example.com"},"subject":"Hi"}`))
	fmt.Println("k1:", s.Count("k1"))
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// 202
	// 400
	// k1: 1
}
