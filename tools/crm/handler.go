package crm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxRequestBody bounds the JSON bodies Handler reads.
const maxRequestBody = 1 << 20

// Handler serves c over HTTP in the REST shape that Client speaks (see the
// package documentation, "# The REST shape"). It does no authentication:
// wrap it in middleware that does.
func Handler(c CRM) http.Handler {
	h := &handler{crm: c}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /customers", h.findCustomers)
	mux.HandleFunc("GET /customers/{key}", h.getCustomer)
	mux.HandleFunc("PUT /customers/{key}", h.putCustomer)
	mux.HandleFunc("GET /customers/{key}/contacts", h.listContacts)
	mux.HandleFunc("PUT /customers/{key}/contacts/{email}", h.putContact)
	mux.HandleFunc("GET /customers/{key}/notes", h.listNotes)
	mux.HandleFunc("POST /customers/{key}/notes", h.postNote)
	mux.HandleFunc("GET /customers/{key}/deals", h.listDeals)
	mux.HandleFunc("GET /deals/{key}", h.getDeal)
	mux.HandleFunc("PUT /deals/{key}", h.putDeal)
	return mux
}

type handler struct{ crm CRM }

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Error codes of the REST shape.
const (
	codeNotFound = "not_found"
	codeInvalid  = "invalid"
	codeInternal = "internal"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var body errorBody
	status := http.StatusInternalServerError
	body.Error.Code, body.Error.Message = codeInternal, err.Error()
	switch {
	case errors.Is(err, ErrNotFound):
		status, body.Error.Code = http.StatusNotFound, codeNotFound
	case errors.Is(err, ErrInvalid):
		status, body.Error.Code = http.StatusBadRequest, codeInvalid
	}
	writeJSON(w, status, body)
}

// readJSON decodes the request body into v, refusing unknown fields.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("request body: %v", err)
	}
	return nil
}

func (h *handler) findCustomers(w http.ResponseWriter, r *http.Request) {
	email := r.URL.Query().Get("email")
	if email == "" {
		writeError(w, invalid("the email query parameter is required"))
		return
	}
	list := []Customer{}
	c, err := h.crm.CustomerByEmail(r.Context(), email)
	switch {
	case err == nil:
		list = append(list, c)
	case !errors.Is(err, ErrNotFound):
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": list})
}

func (h *handler) getCustomer(w http.ResponseWriter, r *http.Request) {
	c, err := h.crm.Customer(r.Context(), r.PathValue("key"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (h *handler) putCustomer(w http.ResponseWriter, r *http.Request) {
	var c Customer
	if err := readJSON(r, &c); err != nil {
		writeError(w, err)
		return
	}
	if err := samePathKey("key", r.PathValue("key"), &c.Key); err != nil {
		writeError(w, err)
		return
	}
	c, err := h.crm.UpsertCustomer(r.Context(), c)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (h *handler) listContacts(w http.ResponseWriter, r *http.Request) {
	list, err := h.crm.Contacts(r.Context(), r.PathValue("key"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contacts": list})
}

func (h *handler) putContact(w http.ResponseWriter, r *http.Request) {
	var c Contact
	if err := readJSON(r, &c); err != nil {
		writeError(w, err)
		return
	}
	if err := samePathKey("customer_key", r.PathValue("key"), &c.CustomerKey); err != nil {
		writeError(w, err)
		return
	}
	if err := samePathKey("email", r.PathValue("email"), &c.Email); err != nil {
		writeError(w, err)
		return
	}
	c, err := h.crm.UpsertContact(r.Context(), c)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (h *handler) listNotes(w http.ResponseWriter, r *http.Request) {
	list, err := h.crm.Notes(r.Context(), r.PathValue("key"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"notes": list})
}

func (h *handler) postNote(w http.ResponseWriter, r *http.Request) {
	var n Note
	if err := readJSON(r, &n); err != nil {
		writeError(w, err)
		return
	}
	if err := samePathKey("customer_key", r.PathValue("key"), &n.CustomerKey); err != nil {
		writeError(w, err)
		return
	}
	n.IdempotencyKey = r.Header.Get("Idempotency-Key")
	n, err := h.crm.AddNote(r.Context(), n)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, n)
}

func (h *handler) listDeals(w http.ResponseWriter, r *http.Request) {
	list, err := h.crm.Deals(r.Context(), r.PathValue("key"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deals": list})
}

func (h *handler) getDeal(w http.ResponseWriter, r *http.Request) {
	d, err := h.crm.Deal(r.Context(), r.PathValue("key"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *handler) putDeal(w http.ResponseWriter, r *http.Request) {
	var d Deal
	if err := readJSON(r, &d); err != nil {
		writeError(w, err)
		return
	}
	if err := samePathKey("key", r.PathValue("key"), &d.Key); err != nil {
		writeError(w, err)
		return
	}
	d, err := h.crm.UpsertDeal(r.Context(), d)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// samePathKey fills an empty body field from the path, and refuses a body
// field that names something else than the path.
func samePathKey(field, fromPath string, inBody *string) error {
	if *inBody == "" {
		*inBody = fromPath
		return nil
	}
	if !strings.EqualFold(strings.TrimSpace(*inBody), fromPath) {
		return invalid("%s %q in the body differs from %q in the path", field, *inBody, fromPath)
	}
	return nil
}

// APIError is an error response from a CRM's REST API that is neither a
// not-found nor an invalid-input error (those match ErrNotFound and
// ErrInvalid).
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("crm: HTTP %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("crm: HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
}
