package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/wagate/wagate/shared"
)

// numberRequest is the body of POST /api/numbers.
type numberRequest struct {
	Phone string          `json:"phone"`
	Name  string          `json:"name"`
	Data  json.RawMessage `json:"data"`
}

// numberNotFound writes the contract's 404 for the numbers cache, whose key is
// "message", not "error".
func numberNotFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "message": "Number not found"})
}

// listNumbers answers GET /api/numbers.
func (s *Server) listNumbers(w http.ResponseWriter, r *http.Request) error {
	list, err := s.Store.ListNumbers(r.Context())
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo leer el cache de números")
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "numbers": list, "total": len(list)})
	return nil
}

// getNumber answers GET /api/numbers/{phone}.
func (s *Server) getNumber(w http.ResponseWriter, r *http.Request) error {
	n, err := s.Store.GetNumber(r.Context(), chi.URLParam(r, "phone"))
	if errors.Is(err, shared.ErrNotFound) {
		numberNotFound(w)
		return nil
	}
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo leer el cache de números")
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "number": n})
	return nil
}

// addNumber answers POST /api/numbers: it creates or replaces the entry (an update keeps
// created_at) and answers 201 either way, as the contract shows one answer.
func (s *Server) addNumber(w http.ResponseWriter, r *http.Request) error {
	var req numberRequest
	if err := decode(w, r, maxSingleBody, &req); err != nil {
		return err
	}
	if err := shared.ValidatePhone("phone", req.Phone); err != nil {
		return err
	}
	data := bytes.TrimSpace(req.Data)
	switch {
	case len(data) == 0 || string(data) == "null":
		data = nil
	case data[0] != '{':
		return shared.Invalidf("El campo 'data' debe ser un objeto JSON")
	default:
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			return shared.Invalidf("El campo 'data' debe ser un objeto JSON")
		}
		data = compact.Bytes()
	}
	n := shared.Number{Phone: req.Phone, Name: req.Name, Data: data}
	if _, err := s.Store.PutNumber(r.Context(), n, s.Now()); err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo guardar el número")
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"success": true, "message": "Number " + req.Phone + " added successfully",
	})
	return nil
}

// deleteNumber answers DELETE /api/numbers/{phone}.
func (s *Server) deleteNumber(w http.ResponseWriter, r *http.Request) error {
	phone := chi.URLParam(r, "phone")
	err := s.Store.DeleteNumber(r.Context(), phone)
	if errors.Is(err, shared.ErrNotFound) {
		numberNotFound(w)
		return nil
	}
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo borrar el número")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "message": "Number " + phone + " deleted successfully",
	})
	return nil
}

// clearNumbers answers POST /api/numbers/clear.
func (s *Server) clearNumbers(w http.ResponseWriter, r *http.Request) error {
	n, err := s.Store.ClearNumbers(r.Context())
	if err != nil {
		return shared.Wrap(shared.KindUnavailable, err, "No se pudo limpiar el cache de números")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true, "deleted": n, "message": "Deleted " + strconv.Itoa(n) + " numbers",
	})
	return nil
}
