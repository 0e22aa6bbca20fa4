package stripefake_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keelhq/keel/billing/stripefake"
)

// The fake applies Stripe's idempotency rules: a request repeated with the
// same Idempotency-Key gets the saved answer, marked Idempotent-Replayed,
// and charges nothing more; the same key with other parameters is refused.
func Example() {
	s := stripefake.NewServer()
	defer s.Close()
	s.AddCustomer("cus_ada", "pm_card_visa")
	client := s.Client()

	post := func(key, amount string) *http.Response {
		form := url.Values{"amount": {amount}, "currency": {"usd"}, "customer": {"cus_ada"},
			"payment_method": {"pm_card_visa"}, "confirm": {"true"}}
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/payment_intents", strings.NewReader(form.Encode()))
		req.SetBasicAuth(stripefake.SecretKey, "")
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp
	}
	first := post("k1", "99")
	again := post("k1", "99")
	other := post("k1", "500")
	fmt.Println(first.StatusCode, again.StatusCode, again.Header.Get("Idempotent-Replayed"), other.StatusCode)
	fmt.Println("charges:", len(s.Charges()))

	// The next charge is executed but its answer is lost.
	s.Inject(http.MethodPost, "/v1/payment_intents", stripefake.Fault{Drop: true})
	form := url.Values{"amount": {"99"}, "currency": {"usd"}, "payment_method": {"pm_card_visa"}, "confirm": {"true"}}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/payment_intents", strings.NewReader(form.Encode()))
	req.SetBasicAuth(stripefake.SecretKey, "")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err := client.Do(req)
	fmt.Println(err != nil, "charges:", len(s.Charges()))
	// Output:
	// 200 200 true 400
	// charges: 1
	// true charges: 2
}
