package store

import (
	"context"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

func TestAlertMarksSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openT(t, dir, Options{})
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ack := fleet.AlertMark{Acked: true, By: "oncall", At: at}
	sil := fleet.AlertMark{By: "oncall", At: at, SilencedUntil: at.Add(time.Hour)}
	for id, m := range map[string]fleet.AlertMark{"xid/n1/5/79": ack, "thermal/n2": sil, "gone": ack} {
		if err := s.PutAlertMark(ctx, id, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAlertMark(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.AlertMarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["xid/n1/5/79"].Acked || !got["thermal/n2"].SilencedUntil.Equal(at.Add(time.Hour)) {
		t.Errorf("marks after reopen = %+v", got)
	}
}
