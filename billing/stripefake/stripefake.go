// Package stripefake is a fake Stripe API for tests: an HTTP server that
// speaks Stripe's wire format (form-encoded requests, JSON objects and
// errors) on the endpoints package billing uses, keeps its objects in
// memory, and applies Stripe's idempotency rules:
//
//   - a POST with an Idempotency-Key that was already used with the same
//     parameters gets the saved response again, with the header
//     Idempotent-Replayed: true, and nothing is executed twice;
//   - the same key with different parameters gets 400 idempotency_error;
//   - the same key while the first request is still in flight gets 409;
//   - requests that fail parameter validation save nothing, as at Stripe.
//
// It counts what really happened (Charges, Refunds, MeterEvents) and can
// inject faults into the next requests of an endpoint (Inject): an HTTP
// error before the request executes (429, 500), a request held in flight,
// or a request that executes and then loses its connection, so that the
// client sees a failure although Stripe acted.
//
// Payment methods follow Stripe's test tokens: pm_card_visa and
// pm_card_mastercard succeed; pm_card_chargeDeclined,
// pm_card_chargeDeclinedInsufficientFunds and
// pm_card_authenticationRequired are declined with a 402 card_error.
//
// Go's HTTP client silently resends a request carrying an Idempotency-Key
// when a reused keep-alive connection fails before the answer; to see a
// dropped connection as an error, give the client a transport with
// DisableKeepAlives (Server.Client does).
package stripefake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SecretKey is the secret key the server accepts by default.
const SecretKey = "sk_test_stripefake"

// Fault is injected into one request. Only one of Status, Drop and Hold is
// meant to be set.
type Fault struct {
	// Status answers with this HTTP status and a Stripe error of the
	// matching type (429 rate_limit, 5xx api_error) before the request
	// reaches the idempotency layer: nothing is executed or saved.
	Status int
	// Drop executes the request and saves its response under its
	// idempotency key, then closes the connection without answering.
	Drop bool
	// Hold keeps the request in flight after it executed, with its key
	// locked (a concurrent request with the same key gets 409), until Hold
	// is closed or the client goes away. Held, if not nil, is closed once
	// the request is being held.
	Hold <-chan struct{}
	Held chan<- struct{}
}

// PaymentIntent is a PaymentIntent as the server keeps it.
type PaymentIntent struct {
	ID             string
	Customer       string
	Amount         int64
	AmountRefunded int64
	Currency       string
	Description    string
	PaymentMethod  string
	Status         string
	Metadata       map[string]string
	Created        int64
	declineCode    string
	declineMessage string
	chargeID       string
}

// Refund is a refund as the server keeps it.
type Refund struct {
	ID            string
	PaymentIntent string
	Amount        int64
	Currency      string
	Reason        string
	Status        string
	Metadata      map[string]string
	Created       int64
}

// MeterEvent is a billing meter event as the server keeps it.
type MeterEvent struct {
	EventName  string
	Identifier string
	Payload    map[string]string
	Timestamp  int64
}

// Request is one request the server answered.
type Request struct {
	Method, Path   string
	IdempotencyKey string
	Status         int
	// Replayed is true when the answer was a saved response.
	Replayed bool
	// Dropped is true when the connection was closed instead of answered.
	Dropped bool
}

// Server is a fake Stripe API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, for billing.Config.APIBase.
	URL string

	srv       *httptest.Server
	secretKey string

	mu          sync.Mutex
	seq         int
	customers   map[string]string // customer ID → default payment method
	intents     []*PaymentIntent
	refunds     []*Refund
	meterEvents []*MeterEvent
	keys        map[string]*savedResponse
	faults      map[string][]Fault
	requests    []Request
}

// savedResponse is what the idempotency layer keeps for a key.
type savedResponse struct {
	hash      string
	done      bool
	status    int
	body      []byte
	requestID string
}

// NewServer starts a fake Stripe API on a loopback port. Close it when
// done.
func NewServer() *Server {
	s := &Server{
		secretKey: SecretKey,
		customers: map[string]string{},
		keys:      map[string]*savedResponse{},
		faults:    map[string][]Fault{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Client returns an HTTP client for the server that opens a connection per
// request, so that an injected Drop reaches the caller as an error.
func (s *Server) Client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// AddCustomer creates a customer whose default payment method
// (invoice_settings.default_payment_method) is paymentMethod, which may be
// empty.
func (s *Server) AddCustomer(id, paymentMethod string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.customers[id] = paymentMethod
}

// Inject queues faults for the next requests to method and path (such as
// "POST", "/v1/payment_intents"), one fault per request, in order.
func (s *Server) Inject(method, path string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	route := method + " " + path
	s.faults[route] = append(s.faults[route], faults...)
}

// ExpireIdempotencyKeys forgets every saved idempotency key, as Stripe does
// 24 hours after a key's first use.
func (s *Server) ExpireIdempotencyKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.keys {
		if r.done {
			delete(s.keys, k)
		}
	}
}

// PaymentIntents returns every PaymentIntent created, oldest first.
func (s *Server) PaymentIntents() []PaymentIntent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PaymentIntent, 0, len(s.intents))
	for _, pi := range s.intents {
		out = append(out, *pi)
	}
	return out
}

// Charges returns the PaymentIntents that succeeded: the charges that moved
// money.
func (s *Server) Charges() []PaymentIntent {
	var out []PaymentIntent
	for _, pi := range s.PaymentIntents() {
		if pi.Status == "succeeded" {
			out = append(out, pi)
		}
	}
	return out
}

// Refunds returns every refund created, oldest first.
func (s *Server) Refunds() []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Refund, 0, len(s.refunds))
	for _, r := range s.refunds {
		out = append(out, *r)
	}
	return out
}

// MeterEvents returns every meter event accepted, oldest first.
func (s *Server) MeterEvents() []MeterEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MeterEvent, 0, len(s.meterEvents))
	for _, ev := range s.meterEvents {
		out = append(out, *ev)
	}
	return out
}

// Requests returns the requests answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// result is a handler's answer.
type result struct {
	status int
	body   any
	// save is false for requests that failed validation: Stripe saves
	// nothing under their idempotency key.
	save bool
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	rec := Request{Method: r.Method, Path: r.URL.Path, IdempotencyKey: key}
	s.mu.Lock()
	reqID := s.newID("req")
	s.mu.Unlock()
	w.Header().Set("Request-Id", reqID)
	if key != "" {
		w.Header().Set("Idempotency-Key", key)
	}
	answer := func(status int, body []byte) {
		rec.Status = status
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}

	if !s.authorized(r) {
		answer(http.StatusUnauthorized, errorBody("invalid_request_error", "", "Invalid API Key provided."))
		return
	}
	if err := r.ParseForm(); err != nil {
		answer(http.StatusBadRequest, errorBody("invalid_request_error", "", "Invalid request body: "+err.Error()))
		return
	}
	form := r.URL.Query()
	if r.Method == http.MethodPost {
		form = r.PostForm
	}
	route := r.Method + " " + r.URL.Path
	fault := s.takeFault(route)
	if fault.Status != 0 {
		typ, code, msg := "api_error", "", "An unknown error occurred (injected)."
		if fault.Status == http.StatusTooManyRequests {
			typ, code, msg = "invalid_request_error", "rate_limit", "Too many requests hit the API too quickly (injected)."
		}
		answer(fault.Status, errorBody(typ, code, msg))
		return
	}
	handler := s.handler(r.Method, r.URL.Path)
	if handler == nil {
		answer(http.StatusNotFound, errorBody("invalid_request_error", "", "Unrecognized request URL ("+route+")."))
		return
	}

	var saved *savedResponse
	s.mu.Lock()
	if r.Method == http.MethodPost && key != "" {
		hash := route + "?" + form.Encode()
		if prev, ok := s.keys[key]; ok {
			s.mu.Unlock()
			switch {
			case !prev.done:
				answer(http.StatusConflict, errorBody("idempotency_error", "idempotency_key_in_use",
					"There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): "+key+". Please try again later."))
			case prev.hash != hash:
				answer(http.StatusBadRequest, errorBody("idempotency_error", "",
					"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '"+key+"' if you meant to execute a different request."))
			default:
				rec.Replayed = true
				w.Header().Set("Idempotent-Replayed", "true")
				w.Header().Set("Original-Request", prev.requestID)
				answer(prev.status, prev.body)
			}
			return
		}
		saved = &savedResponse{hash: hash, requestID: reqID}
		s.keys[key] = saved
	}
	res := handler(form)
	body := mustJSON(res.body)
	s.mu.Unlock()

	if fault.Hold != nil {
		if fault.Held != nil {
			close(fault.Held)
		}
		select {
		case <-fault.Hold:
		case <-r.Context().Done():
		}
	}
	if saved != nil {
		s.mu.Lock()
		if res.save {
			saved.status, saved.body, saved.done = res.status, body, true
		} else {
			delete(s.keys, key)
		}
		s.mu.Unlock()
	}

	if fault.Drop {
		rec.Status, rec.Dropped = res.status, true
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	answer(res.status, body)
}

func (s *Server) authorized(r *http.Request) bool {
	if user, _, ok := r.BasicAuth(); ok {
		return user == s.secretKey
	}
	return r.Header.Get("Authorization") == "Bearer "+s.secretKey
}

func (s *Server) takeFault(route string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[route]
	if len(q) == 0 {
		return Fault{}
	}
	s.faults[route] = q[1:]
	return q[0]
}

// handler returns the handler of a route, or nil. Handlers run with s.mu
// held.
func (s *Server) handler(method, path string) func(form url.Values) result {
	switch {
	case method == http.MethodPost && path == "/v1/payment_intents":
		return s.createPaymentIntent
	case method == http.MethodGet && path == "/v1/payment_intents":
		return s.listPaymentIntents
	case method == http.MethodGet && strings.HasPrefix(path, "/v1/payment_intents/"):
		id := strings.TrimPrefix(path, "/v1/payment_intents/")
		return func(url.Values) result { return s.getPaymentIntent(id) }
	case method == http.MethodGet && strings.HasPrefix(path, "/v1/customers/"):
		id := strings.TrimPrefix(path, "/v1/customers/")
		return func(url.Values) result { return s.getCustomer(id) }
	case method == http.MethodPost && path == "/v1/refunds":
		return s.createRefund
	case method == http.MethodGet && path == "/v1/refunds":
		return s.listRefunds
	case method == http.MethodPost && path == "/v1/billing/meter_events":
		return s.createMeterEvent
	}
	return nil
}

// testCards are Stripe's test payment methods that are declined.
var testCards = map[string]struct{ code, declineCode, message string }{ //nolint:gochecknoglobals // immutable table
	"pm_card_visa":                            {},
	"pm_card_mastercard":                      {},
	"pm_card_chargeDeclined":                  {"card_declined", "generic_decline", "Your card was declined."},
	"pm_card_chargeDeclinedInsufficientFunds": {"card_declined", "insufficient_funds", "Your card has insufficient funds."},
	"pm_card_authenticationRequired":          {"authentication_required", "authentication_required", "Your card was declined. This transaction requires authentication."},
}

func (s *Server) createPaymentIntent(form url.Values) result {
	if bad := unknownParam(form, []string{"amount", "currency", "customer", "payment_method", "confirm", "off_session", "description", "capture_method"},
		[]string{"metadata[", "automatic_payment_methods[", "expand["}); bad != "" {
		return invalid("parameter_unknown", bad, "Received unknown parameter: "+bad)
	}
	amount, err := strconv.ParseInt(form.Get("amount"), 10, 64)
	if err != nil || amount <= 0 {
		return invalid("parameter_missing", "amount", "Missing or invalid required param: amount.")
	}
	currency := form.Get("currency")
	if len(currency) != 3 {
		return invalid("parameter_missing", "currency", "Missing or invalid required param: currency.")
	}
	if currency == "usd" && amount < 50 {
		return invalid("amount_too_small", "amount", "Amount must be at least $0.50 usd")
	}
	customer := form.Get("customer")
	if customer != "" {
		if _, ok := s.customers[customer]; !ok {
			return invalid("resource_missing", "customer", "No such customer: '"+customer+"'")
		}
	}
	pm := form.Get("payment_method")
	if pm != "" {
		if _, ok := testCards[pm]; !ok {
			return invalid("resource_missing", "payment_method", "No such PaymentMethod: '"+pm+"'")
		}
	}
	confirm := form.Get("confirm") == "true"
	if confirm && pm == "" {
		return invalid("parameter_missing", "payment_method", "You cannot confirm this PaymentIntent because it's missing a payment method.")
	}
	pi := &PaymentIntent{
		ID: s.newID("pi"), Customer: customer, Amount: amount, Currency: currency,
		Description: form.Get("description"), PaymentMethod: pm, Status: "requires_confirmation",
		Metadata: subMap(form, "metadata"), Created: time.Now().Unix(),
	}
	s.intents = append(s.intents, pi)
	if !confirm {
		return result{status: http.StatusOK, body: pi.json(), save: true}
	}
	if card := testCards[pm]; card.code != "" {
		pi.Status, pi.declineCode, pi.declineMessage = "requires_payment_method", card.declineCode, card.message
		e := map[string]any{
			"type": "card_error", "code": card.code, "decline_code": card.declineCode, "message": card.message,
			"payment_intent": pi.json(), "doc_url": "https://stripe.com/docs/error-codes/" + card.code,
		}
		return result{status: http.StatusPaymentRequired, body: map[string]any{"error": e}, save: true}
	}
	pi.Status, pi.chargeID = "succeeded", s.newID("ch")
	return result{status: http.StatusOK, body: pi.json(), save: true}
}

func (pi *PaymentIntent) json() map[string]any {
	m := map[string]any{
		"id": pi.ID, "object": "payment_intent", "amount": pi.Amount, "amount_received": 0,
		"currency": pi.Currency, "customer": nullable(pi.Customer), "description": nullable(pi.Description),
		"payment_method": nullable(pi.PaymentMethod), "status": pi.Status, "metadata": nonNil(pi.Metadata),
		"created": pi.Created, "livemode": false, "capture_method": "automatic", "confirmation_method": "automatic",
		"latest_charge": nullable(pi.chargeID), "last_payment_error": nil,
	}
	if pi.Status == "succeeded" {
		m["amount_received"] = pi.Amount
	}
	if pi.declineCode != "" {
		m["last_payment_error"] = map[string]any{"type": "card_error", "code": "card_declined", "decline_code": pi.declineCode, "message": pi.declineMessage}
	}
	return m
}

func (s *Server) getPaymentIntent(id string) result {
	for _, pi := range s.intents {
		if pi.ID == id {
			return result{status: http.StatusOK, body: pi.json()}
		}
	}
	return result{status: http.StatusNotFound, body: errorObject("invalid_request_error", "resource_missing", "id", "No such payment_intent: '"+id+"'")}
}

func (s *Server) listPaymentIntents(form url.Values) result {
	if bad := unknownParam(form, []string{"customer", "limit", "starting_after", "ending_before"}, []string{"created[", "expand["}); bad != "" {
		return invalid("parameter_unknown", bad, "Received unknown parameter: "+bad)
	}
	customer := form.Get("customer")
	var items []listItem
	for _, pi := range s.intents {
		if (customer == "" || pi.Customer == customer) && createdMatches(form, pi.Created) {
			items = append(items, listItem{id: pi.ID, created: pi.Created, obj: pi.json()})
		}
	}
	return list("/v1/payment_intents", items, form)
}

func (s *Server) getCustomer(id string) result {
	pm, ok := s.customers[id]
	if !ok {
		return result{status: http.StatusNotFound, body: errorObject("invalid_request_error", "resource_missing", "id", "No such customer: '"+id+"'")}
	}
	return result{status: http.StatusOK, body: map[string]any{
		"id": id, "object": "customer", "livemode": false, "metadata": map[string]string{}, "default_source": nil,
		"invoice_settings": map[string]any{"default_payment_method": nullable(pm), "custom_fields": nil, "footer": nil},
	}}
}

func (s *Server) createRefund(form url.Values) result {
	if bad := unknownParam(form, []string{"payment_intent", "amount", "reason"}, []string{"metadata[", "expand["}); bad != "" {
		return invalid("parameter_unknown", bad, "Received unknown parameter: "+bad)
	}
	id := form.Get("payment_intent")
	var pi *PaymentIntent
	for _, p := range s.intents {
		if p.ID == id {
			pi = p
		}
	}
	if pi == nil {
		return invalid("resource_missing", "payment_intent", "No such payment_intent: '"+id+"'")
	}
	if pi.Status != "succeeded" {
		return invalid("charge_not_refundable", "payment_intent", "This PaymentIntent does not have a successful charge to refund.")
	}
	remaining := pi.Amount - pi.AmountRefunded
	amount := remaining
	if v := form.Get("amount"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return invalid("parameter_invalid_integer", "amount", "Invalid positive integer: amount.")
		}
		amount = n
	}
	if remaining == 0 {
		return invalid("charge_already_refunded", "", "Charge "+pi.chargeID+" has already been refunded.")
	}
	if amount > remaining {
		return invalid("amount_too_large", "amount", fmt.Sprintf("Refund amount (%d) is greater than unrefunded amount on charge (%d)", amount, remaining))
	}
	reason := form.Get("reason")
	if reason != "" && reason != "duplicate" && reason != "fraudulent" && reason != "requested_by_customer" {
		return invalid("parameter_invalid_string", "reason", "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer")
	}
	pi.AmountRefunded += amount
	r := &Refund{
		ID: s.newID("re"), PaymentIntent: pi.ID, Amount: amount, Currency: pi.Currency, Reason: reason,
		Status: "succeeded", Metadata: subMap(form, "metadata"), Created: time.Now().Unix(),
	}
	s.refunds = append(s.refunds, r)
	return result{status: http.StatusOK, body: r.json(pi.chargeID), save: true}
}

func (r *Refund) json(chargeID string) map[string]any {
	return map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "currency": r.Currency, "payment_intent": r.PaymentIntent,
		"charge": nullable(chargeID), "reason": nullable(r.Reason), "status": r.Status, "metadata": nonNil(r.Metadata), "created": r.Created,
	}
}

func (s *Server) listRefunds(form url.Values) result {
	if bad := unknownParam(form, []string{"payment_intent", "charge", "limit", "starting_after", "ending_before"}, []string{"created[", "expand["}); bad != "" {
		return invalid("parameter_unknown", bad, "Received unknown parameter: "+bad)
	}
	pi := form.Get("payment_intent")
	var items []listItem
	for _, r := range s.refunds {
		if (pi == "" || r.PaymentIntent == pi) && createdMatches(form, r.Created) {
			items = append(items, listItem{id: r.ID, created: r.Created, obj: r.json("")})
		}
	}
	return list("/v1/refunds", items, form)
}

func (s *Server) createMeterEvent(form url.Values) result {
	if bad := unknownParam(form, []string{"event_name", "identifier", "timestamp"}, []string{"payload[", "expand["}); bad != "" {
		return invalid("parameter_unknown", bad, "Received unknown parameter: "+bad)
	}
	name := form.Get("event_name")
	if name == "" {
		return invalid("parameter_missing", "event_name", "Missing required param: event_name.")
	}
	payload := subMap(form, "payload")
	if payload["stripe_customer_id"] == "" {
		return invalid("parameter_missing", "payload[stripe_customer_id]", "Missing required param: payload[stripe_customer_id].")
	}
	if _, err := strconv.ParseFloat(payload["value"], 64); err != nil {
		return invalid("parameter_invalid", "payload[value]", "payload[value] must be a number.")
	}
	id := form.Get("identifier")
	if id == "" {
		id = s.newID("mev")
	}
	for _, ev := range s.meterEvents {
		if ev.Identifier == id {
			return invalid("resource_already_exists", "identifier", "An event with identifier "+id+" already exists.")
		}
	}
	ts := time.Now().Unix()
	if v := form.Get("timestamp"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return invalid("parameter_invalid_integer", "timestamp", "Invalid integer: timestamp.")
		}
		ts = n
	}
	ev := &MeterEvent{EventName: name, Identifier: id, Payload: payload, Timestamp: ts}
	s.meterEvents = append(s.meterEvents, ev)
	return result{status: http.StatusOK, body: map[string]any{
		"object": "billing.meter_event", "event_name": name, "identifier": id, "payload": payload,
		"timestamp": ts, "created": time.Now().Unix(), "livemode": false,
	}, save: true}
}

// listItem is one object of a list answer.
type listItem struct {
	id      string
	created int64
	obj     map[string]any
}

// list answers a list request, newest first, paged by limit and
// starting_after as Stripe does.
func list(path string, items []listItem, form url.Values) result {
	slices.Reverse(items) // stored oldest first
	if after := form.Get("starting_after"); after != "" {
		for i, it := range items {
			if it.id == after {
				items = items[i+1:]
				break
			}
		}
	}
	limit := 10
	if v, err := strconv.Atoi(form.Get("limit")); err == nil && v > 0 && v <= 100 {
		limit = v
	}
	hasMore := len(items) > limit
	if hasMore {
		items = items[:limit]
	}
	data := make([]map[string]any, 0, len(items))
	for _, it := range items {
		data = append(data, it.obj)
	}
	return result{status: http.StatusOK, body: map[string]any{"object": "list", "url": path, "has_more": hasMore, "data": data}}
}

// createdMatches applies created[gte|gt|lte|lt] filters.
func createdMatches(form url.Values, created int64) bool {
	for op, ok := range map[string]func(a, b int64) bool{
		"gte": func(a, b int64) bool { return a >= b },
		"gt":  func(a, b int64) bool { return a > b },
		"lte": func(a, b int64) bool { return a <= b },
		"lt":  func(a, b int64) bool { return a < b },
	} {
		if v := form.Get("created[" + op + "]"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || !ok(created, n) {
				return false
			}
		}
	}
	return true
}

// unknownParam returns the first parameter that is neither named nor under
// one of the prefixes, or "".
func unknownParam(form url.Values, names, prefixes []string) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(names, k) {
			continue
		}
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			continue
		}
		return k
	}
	return ""
}

// subMap collects name[k]=v parameters.
func subMap(form url.Values, name string) map[string]string {
	m := map[string]string{}
	for k, v := range form {
		if strings.HasPrefix(k, name+"[") && strings.HasSuffix(k, "]") && len(v) > 0 {
			m[k[len(name)+1:len(k)-1]] = v[0]
		}
	}
	return m
}

func (s *Server) newID(prefix string) string {
	s.seq++
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s_%s%04d", prefix, hex.EncodeToString(b), s.seq)
}

func invalid(code, param, msg string) result {
	return result{status: http.StatusBadRequest, body: errorObject("invalid_request_error", code, param, msg)}
}

func errorObject(typ, code, param, msg string) map[string]any {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	return map[string]any{"error": e}
}

func errorBody(typ, code, msg string) []byte {
	return mustJSON(errorObject(typ, code, "", msg))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("stripefake: encode: %v", err))
	}
	return b
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
