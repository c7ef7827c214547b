package store

import (
	"errors"
	"slices"

	"modernc.org/sqlite"
)

// SQLite primary result codes of a row that cannot be stored: the row's own
// fault, not the database's.
const (
	sqliteTooBig     = 18
	sqliteConstraint = 19
	sqliteMismatch   = 20
	sqliteRange      = 25
)

// rowFault reports whether err is a row's own fault (a constraint, a type
// mismatch, a value too big) that writing other nodes' rows would not
// meet. Disk full, I/O errors, corruption, a busy database or a cancelled
// context are everyone's problem: they fail the whole commit.
func rowFault(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqliteTooBig, sqliteConstraint, sqliteMismatch, sqliteRange:
		return true
	}
	return false
}

// isolate runs f, which writes node id's rows, inside a savepoint. When f
// fails with a fault of the node's own rows, they are rolled back, the
// node's staged state is restored, the failure is noted in w.isolated and
// isolate returns nil: one bad node's rows do not stop every other node's
// commit and acks. Any other error is returned.
func (w *writer) isolate(id string, f func() error) error {
	if _, err := w.tx.ExecContext(w.ctx, `SAVEPOINT node`); err != nil {
		return err
	}
	prev, had := w.staged[id]
	var saved ledgerNode
	if had {
		saved = *prev
		saved.versions = slices.Clone(prev.versions)
		saved.dirty = slices.Clone(prev.dirty)
	}
	err := f()
	if err == nil || !rowFault(err) || w.ctx.Err() != nil {
		if _, rerr := w.tx.ExecContext(w.ctx, `RELEASE node`); rerr != nil && err == nil {
			err = rerr
		}
		return err
	}
	if _, rerr := w.tx.ExecContext(w.ctx, `ROLLBACK TO node`); rerr != nil {
		return errors.Join(err, rerr)
	}
	if _, rerr := w.tx.ExecContext(w.ctx, `RELEASE node`); rerr != nil {
		return errors.Join(err, rerr)
	}
	if had {
		*prev = saved
	} else {
		delete(w.staged, id)
	}
	w.noteIsolated(id, err)
	return nil
}

func (w *writer) noteIsolated(id string, err error) {
	if w.isolated == nil {
		w.isolated = map[string]error{}
	}
	if _, ok := w.isolated[id]; !ok {
		w.isolated[id] = err
	}
}

// IsolatedRows counts the nodes whose rows a commit left out because they
// could not be stored (logged at Error with the reason), since Open.
func (s *Store) IsolatedRows() uint64 { return s.isolatedRows.Load() }
