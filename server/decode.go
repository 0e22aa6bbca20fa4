package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// decodeJSON reads the request body into dst, a pointer to a struct. The
// body is bounded by Config.MaxBodyBytes and must be one JSON object with
// no fields dst does not know. An empty body decodes as {} when
// emptyOK. It returns a Problem naming what is wrong.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, dst any, emptyOK bool) *Problem {
	body, p := s.readBody(w, r)
	if p != nil {
		return p
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Detail: "the request body is empty; send a JSON object"}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &Problem{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType, Detail: fmt.Sprintf("Content-Type %q: send application/json", ct)}
		}
	}
	return decodeBytes(body, dst)
}

// readBody reads the whole body within the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *Problem) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, s.tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, s.tooLarge()
		}
		return nil, &Problem{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Detail: "reading the request body: " + err.Error()}
	}
	return body, nil
}

func (s *Server) tooLarge() *Problem {
	return &Problem{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
		Detail: fmt.Sprintf("the request body is larger than %d bytes", s.cfg.MaxBodyBytes)}
}

// decodeBytes decodes one JSON object from body into dst.
func decodeBytes(body []byte, dst any) *Problem {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] != '{' {
		off := int64(len(body) - len(trimmed))
		return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Offset: &off,
			Detail: fmt.Sprintf("the request body must be a JSON object (offset %d)", off)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err, dec.InputOffset(), int64(len(body)))
	}
	// Nothing but white space may follow the object.
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		off := dec.InputOffset()
		if err == nil {
			off -= int64(len(extra))
		}
		return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Offset: &off,
			Detail: fmt.Sprintf("unexpected data after the JSON object at offset %d", off)}
	}
	return nil
}

// jsonProblem turns a json decoding error into a Problem that names the
// offset or the field.
func jsonProblem(err error, decOffset, size int64) *Problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, the bad one included; report the
		// bad byte's own (0-based) offset.
		off := max(syn.Offset-1, 0)
		return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Offset: &off,
			Detail: fmt.Sprintf("malformed JSON at offset %d: %s", off, strings.TrimPrefix(syn.Error(), "json: "))}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		off := size
		return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Offset: &off,
			Detail: fmt.Sprintf("malformed JSON: the body ends early at offset %d", off)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		off := typ.Offset
		p := fieldProblem(CodeInvalidField, field, fmt.Sprintf("must be a JSON %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value))
		p.Offset = &off
		return p
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		field := strings.Trim(strings.TrimPrefix(msg, unknown), `"`)
		p := fieldProblem(CodeUnknownField, field, "unknown field")
		off := decOffset
		p.Offset = &off
		return p
	}
	off := decOffset
	return &Problem{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Offset: &off, Detail: err.Error()}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	}
	return goKind
}
