package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/fleettop/fleettop/fleet"
)

const markPrefix = "alert_mark/"

// PutAlertMark records the mark of alert id, replacing any earlier one.
func (s *Store) PutAlertMark(ctx context.Context, id string, m fleet.AlertMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("alert mark %s: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, markPrefix+id, string(b)); err != nil {
		return fmt.Errorf("store alert mark %s: %w", id, err)
	}
	return nil
}

// DeleteAlertMark forgets the mark of alert id.
func (s *Store) DeleteAlertMark(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, markPrefix+id); err != nil {
		return fmt.Errorf("delete alert mark %s: %w", id, err)
	}
	return nil
}

// AlertMarks returns every stored mark by alert id.
func (s *Store) AlertMarks(ctx context.Context) (map[string]fleet.AlertMark, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, value FROM meta WHERE key >= ? AND key < ?`, markPrefix, markPrefix[:len(markPrefix)-1]+"0")
	if err != nil {
		return nil, fmt.Errorf("read alert marks: %w", err)
	}
	defer rows.Close()
	out := map[string]fleet.AlertMark{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read alert marks: %w", err)
		}
		var m fleet.AlertMark
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, fmt.Errorf("alert mark %s: %w", k, err)
		}
		out[strings.TrimPrefix(k, markPrefix)] = m
	}
	return out, rows.Err()
}
