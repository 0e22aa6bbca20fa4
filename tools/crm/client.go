package crm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is the CRM API's root, for example
	// "https://crm.example.com/api/v1". Required.
	BaseURL string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	// Optional.
	Token string
	// HTTPClient sends the requests. Optional; default a client with a
	// 30-second timeout.
	HTTPClient *http.Client
}

// Client is a CRM reached over HTTP, in the REST shape documented in the
// package documentation. It implements CRM and is safe for concurrent use.
type Client struct {
	base  string // without a trailing slash
	token string
	http  *http.Client
}

var _ CRM = (*Client)(nil)

// NewClient returns a Client for the API at cfg.BaseURL.
func NewClient(cfg *ClientConfig) (*Client, error) {
	if cfg == nil || cfg.BaseURL == "" {
		return nil, errors.New("crm: NewClient: BaseURL is required")
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("crm: NewClient: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u.String(), token: cfg.Token, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	return c, nil
}

// maxResponseBody bounds the responses Client reads.
const maxResponseBody = 8 << 20

// do sends a request with an optional JSON body and decodes a JSON response
// into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) error {
	// path's segments are escaped already (seg).
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &APIError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(data))}
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
			apiErr.Code, apiErr.Message = eb.Error.Code, eb.Error.Message
		}
		return apiErr
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}

// Is makes a 404 match ErrNotFound and a 400 or 422 match ErrInvalid.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrInvalid:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity
	}
	return false
}

func seg(s string) string { return url.PathEscape(s) }

// UpsertCustomer implements CRM: PUT /customers/{key}.
func (c *Client) UpsertCustomer(ctx context.Context, cu Customer) (Customer, error) {
	cu, err := normalizeCustomer(cu)
	if err != nil {
		return Customer{}, err
	}
	var out Customer
	if err := c.do(ctx, http.MethodPut, "/customers/"+seg(cu.Key), nil, nil, cu, &out); err != nil {
		return Customer{}, fmt.Errorf("crm: upsert customer %q: %w", cu.Key, err)
	}
	return out, nil
}

// Customer implements CRM: GET /customers/{key}.
func (c *Client) Customer(ctx context.Context, key string) (Customer, error) {
	if strings.TrimSpace(key) == "" {
		return Customer{}, fmt.Errorf("crm: customer: %w", invalid("key is required"))
	}
	var out Customer
	if err := c.do(ctx, http.MethodGet, "/customers/"+seg(key), nil, nil, nil, &out); err != nil {
		return Customer{}, fmt.Errorf("crm: customer %q: %w", key, err)
	}
	return out, nil
}

// CustomerByEmail implements CRM: GET /customers?email={email}.
func (c *Client) CustomerByEmail(ctx context.Context, email string) (Customer, error) {
	norm, err := normalizeEmail("email", email, true)
	if err != nil {
		return Customer{}, err
	}
	var out struct {
		Customers []Customer `json:"customers"`
	}
	if err := c.do(ctx, http.MethodGet, "/customers", url.Values{"email": {norm}}, nil, nil, &out); err != nil {
		return Customer{}, fmt.Errorf("crm: customer with email %q: %w", norm, err)
	}
	if len(out.Customers) == 0 {
		return Customer{}, fmt.Errorf("crm: customer with email %q: %w", norm, ErrNotFound)
	}
	return out.Customers[0], nil
}

// UpsertContact implements CRM: PUT /customers/{key}/contacts/{email}.
func (c *Client) UpsertContact(ctx context.Context, co Contact) (Contact, error) {
	co, err := normalizeContact(co)
	if err != nil {
		return Contact{}, err
	}
	var out Contact
	path := "/customers/" + seg(co.CustomerKey) + "/contacts/" + seg(co.Email)
	if err := c.do(ctx, http.MethodPut, path, nil, nil, co, &out); err != nil {
		return Contact{}, fmt.Errorf("crm: upsert contact %q: %w", co.Email, err)
	}
	return out, nil
}

// Contacts implements CRM: GET /customers/{key}/contacts.
func (c *Client) Contacts(ctx context.Context, customerKey string) ([]Contact, error) {
	var out struct {
		Contacts []Contact `json:"contacts"`
	}
	if err := c.list(ctx, customerKey, "contacts", &out); err != nil {
		return nil, err
	}
	if out.Contacts == nil {
		out.Contacts = []Contact{}
	}
	return out.Contacts, nil
}

// AddNote implements CRM: POST /customers/{key}/notes, with the note's
// IdempotencyKey in the Idempotency-Key header.
func (c *Client) AddNote(ctx context.Context, n Note) (Note, error) {
	n, err := normalizeNote(n)
	if err != nil {
		return Note{}, err
	}
	var h http.Header
	if n.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {n.IdempotencyKey}}
	}
	var out Note
	if err := c.do(ctx, http.MethodPost, "/customers/"+seg(n.CustomerKey)+"/notes", nil, h, n, &out); err != nil {
		return Note{}, fmt.Errorf("crm: add note: %w", err)
	}
	out.IdempotencyKey = n.IdempotencyKey
	return out, nil
}

// Notes implements CRM: GET /customers/{key}/notes.
func (c *Client) Notes(ctx context.Context, customerKey string) ([]Note, error) {
	var out struct {
		Notes []Note `json:"notes"`
	}
	if err := c.list(ctx, customerKey, "notes", &out); err != nil {
		return nil, err
	}
	if out.Notes == nil {
		out.Notes = []Note{}
	}
	return out.Notes, nil
}

// UpsertDeal implements CRM: PUT /deals/{key}.
func (c *Client) UpsertDeal(ctx context.Context, d Deal) (Deal, error) {
	d, err := normalizeDeal(d)
	if err != nil {
		return Deal{}, err
	}
	var out Deal
	if err := c.do(ctx, http.MethodPut, "/deals/"+seg(d.Key), nil, nil, d, &out); err != nil {
		return Deal{}, fmt.Errorf("crm: upsert deal %q: %w", d.Key, err)
	}
	return out, nil
}

// Deal implements CRM: GET /deals/{key}.
func (c *Client) Deal(ctx context.Context, key string) (Deal, error) {
	if strings.TrimSpace(key) == "" {
		return Deal{}, fmt.Errorf("crm: deal: %w", invalid("key is required"))
	}
	var out Deal
	if err := c.do(ctx, http.MethodGet, "/deals/"+seg(key), nil, nil, nil, &out); err != nil {
		return Deal{}, fmt.Errorf("crm: deal %q: %w", key, err)
	}
	return out, nil
}

// Deals implements CRM: GET /customers/{key}/deals.
func (c *Client) Deals(ctx context.Context, customerKey string) ([]Deal, error) {
	var out struct {
		Deals []Deal `json:"deals"`
	}
	if err := c.list(ctx, customerKey, "deals", &out); err != nil {
		return nil, err
	}
	if out.Deals == nil {
		out.Deals = []Deal{}
	}
	return out.Deals, nil
}

func (c *Client) list(ctx context.Context, customerKey, what string, out any) error {
	if strings.TrimSpace(customerKey) == "" {
		return fmt.Errorf("crm: %s: %w", what, invalid("customer key is required"))
	}
	if err := c.do(ctx, http.MethodGet, "/customers/"+seg(customerKey)+"/"+what, nil, nil, nil, out); err != nil {
		return fmt.Errorf("crm: %s of %q: %w", what, customerKey, err)
	}
	return nil
}
