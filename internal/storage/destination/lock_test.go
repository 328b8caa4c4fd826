package destination

import (
	"context"
	"errors"
	"testing"

	"github.com/pgfleet/pgfleet/internal/input"
	"github.com/pgfleet/pgfleet/internal/storage"
	"github.com/pgfleet/pgfleet/internal/storage/dir"
)

// ReadLock: both inputs or neither, each checked; the problem names the
// input at fault.
func TestReadLock(t *testing.T) {
	table := input.NewTable([]input.ModeDecl{{Name: "backup", Inputs: append(Inputs(), WriteInputs()...)}})
	for _, tc := range []struct {
		raw   map[string]string
		want  storage.Lock
		blame []string
	}{
		{map[string]string{}, storage.Lock{}, nil},
		{map[string]string{"object-lock-mode": "governance", "object-lock-days": "30"}, storage.Lock{Mode: storage.LockGovernance, Days: 30}, nil},
		{map[string]string{"object-lock-mode": "compliance", "object-lock-days": "1"}, storage.Lock{Mode: storage.LockCompliance, Days: 1}, nil},
		{map[string]string{"object-lock-mode": "governance"}, storage.Lock{}, []string{"object-lock-days"}},
		{map[string]string{"object-lock-days": "7"}, storage.Lock{}, []string{"object-lock-mode"}},
		{map[string]string{"object-lock-mode": "legal-hold", "object-lock-days": "0"}, storage.Lock{}, []string{"object-lock-mode", "object-lock-days"}},
		{map[string]string{"object-lock-mode": "governance", "object-lock-days": "36501"}, storage.Lock{}, []string{"object-lock-days"}},
	} {
		in := input.NewValues(table, func(name string) string { return tc.raw[name] })
		got := ReadLock(in)
		var blamed []string
		for _, e := range input.Split(in.Err()) {
			var bad *input.Error
			if errors.As(e, &bad) {
				blamed = append(blamed, bad.Input)
			}
		}
		if got != tc.want || len(blamed) != len(tc.blame) {
			t.Errorf("%v: %+v, blamed %v; want %+v, blamed %v", tc.raw, got, blamed, tc.want, tc.blame)
			continue
		}
		for i := range blamed {
			if blamed[i] != tc.blame[i] {
				t.Errorf("%v: blamed %v, want %v", tc.raw, blamed, tc.blame)
			}
		}
	}
}

// A folder cannot lock: Open refuses the lock for it, and CheckLock, given
// a store that cannot lock anyway, refuses rather than let it write
// unlocked.
func TestFolderRefusesLock(t *testing.T) {
	lock := WriteOptions{Lock: storage.Lock{Mode: storage.LockGovernance, Days: 1}}
	if _, blamed := open(t, map[string]string{"destination": "file:backups"}, lock); len(blamed) != 1 || blamed[0] != "object-lock-mode" {
		t.Errorf("blamed %v, want object-lock-mode", blamed)
	}
	s, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var bad *input.Error
	if err := CheckLock(context.Background(), s, lock); !errors.As(err, &bad) || bad.Input != "object-lock-mode" {
		t.Errorf("CheckLock on a folder = %v, want an input error", err)
	}
	if err := CheckLock(context.Background(), s, WriteOptions{}); err != nil {
		t.Errorf("CheckLock without a lock = %v", err)
	}
}
