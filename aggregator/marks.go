package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// AlertMarker keeps operators' alert marks across restarts (store.Store in
// production).
type AlertMarker interface {
	PutAlertMark(ctx context.Context, id string, m fleet.AlertMark) error
	DeleteAlertMark(ctx context.Context, id string) error
	AlertMarks(ctx context.Context) (map[string]fleet.AlertMark, error)
}

// maxSilence is the longest an alert may be silenced at once.
const maxSilence = 7 * 24 * time.Hour

// alertMarks holds the marks in memory, written through to the store.
type alertMarks struct {
	mu sync.Mutex
	m  map[string]fleet.AlertMark
	st AlertMarker // nil: marks last until the aggregator stops
}

func (am *alertMarks) load(ctx context.Context, st AlertMarker) error {
	am.st = st
	am.m = map[string]fleet.AlertMark{}
	if st == nil {
		return nil
	}
	m, err := st.AlertMarks(ctx)
	if err != nil {
		return err
	}
	am.m = m
	return nil
}

// apply returns alerts with their marks: acknowledged (for the occurrence
// that was acknowledged) and silenced until a time still to come. The
// input is shared with other callers and is not modified.
func (am *alertMarks) apply(alerts []fleet.Alert, now time.Time) []fleet.Alert {
	am.mu.Lock()
	defer am.mu.Unlock()
	if len(am.m) == 0 {
		return alerts
	}
	out := slices.Clone(alerts)
	for i := range out {
		a := &out[i]
		m, ok := am.m[a.ID]
		if !ok {
			continue
		}
		if m.Acked && m.Start.Equal(a.Start) {
			a.Acked, a.AckedBy = true, m.By
		}
		if m.SilencedUntil.After(now) {
			a.SilencedUntil = m.SilencedUntil
		}
	}
	return out
}

// markRequest is the body of POST /api/v1/alerts/mark.
type markRequest struct {
	ID     string `json:"id"`
	Action string `json:"action"` // ack, unack, silence, unsilence
	For    string `json:"for"`    // silence: a Go duration, e.g. "1h"
}

// handleMark acknowledges or silences an alert (operator tokens only).
func (s *Server) handleMark(w http.ResponseWriter, r *http.Request) {
	tok := s.authorize(w, r, RoleOperator)
	if tok == nil {
		return
	}
	var req markRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, "bad request: want {\"id\": ALERT-ID, \"action\": \"ack|unack|silence|unsilence\", \"for\": \"1h\"}: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := s.clock()
	_, _, alerts := s.summarize(now)
	i := slices.IndexFunc(alerts, func(a fleet.Alert) bool { return a.ID == req.ID })
	if i < 0 {
		http.Error(w, fmt.Sprintf("not found: no alert %q (open or recently ended)", req.ID), http.StatusNotFound)
		return
	}
	am := &s.marks
	am.mu.Lock()
	m := am.m[req.ID]
	switch req.Action {
	case "ack":
		m.Acked, m.Start = true, alerts[i].Start
	case "unack":
		m.Acked = false
	case "silence":
		d, err := time.ParseDuration(req.For)
		if err != nil || d <= 0 || d > maxSilence {
			am.mu.Unlock()
			http.Error(w, fmt.Sprintf("bad request: silence needs \"for\": a duration up to %s, e.g. \"1h\"", maxSilence), http.StatusBadRequest)
			return
		}
		m.SilencedUntil = now.Add(d)
	case "unsilence":
		m.SilencedUntil = time.Time{}
	default:
		am.mu.Unlock()
		http.Error(w, fmt.Sprintf("bad request: unknown action %q (want ack, unack, silence or unsilence)", req.Action), http.StatusBadRequest)
		return
	}
	m.By, m.At = tok.Name, now
	var err error
	if !m.Acked && m.SilencedUntil.IsZero() {
		delete(am.m, req.ID)
		if am.st != nil {
			err = am.st.DeleteAlertMark(r.Context(), req.ID)
		}
	} else {
		am.m[req.ID] = m
		if am.st != nil {
			err = am.st.PutAlertMark(r.Context(), req.ID, m)
		}
	}
	am.mu.Unlock()
	if err != nil {
		s.log.Error("alert mark not stored", "alert", req.ID, "err", err)
		http.Error(w, "the mark could not be stored: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	s.log.Info("alert marked", "alert", req.ID, "action", req.Action, "by", tok.Name)
	s.writeJSON(w, r, am.apply(alerts[i:i+1], now)[0])
}
