package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", "a/b.dump", "acme-prj-1/20261122T030000Z.dump.zst", ".hidden", "a/..b", "a/b..", "a b/c"} {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range []string{"", "/", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a/..", "a\x00b"} {
		if err := CheckKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "a/b", "a/b/", "a/.", "a/.."} {
		if err := CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "/a", "a//", "../", "a/../b", "./a"} {
		if err := CheckPrefix(p); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CheckPrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
}

func TestError(t *testing.T) {
	err := fmt.Errorf("backup: %w", &Error{Op: "put", Dest: "s3://bkt/backups/", Key: "acme/x.dump", Err: context.Canceled, Hint: "try again"})
	if got, want := err.Error(), "backup: put acme/x.dump in s3://bkt/backups/: context canceled (try again)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, context.Canceled) {
		t.Error("the cause does not unwrap")
	}
	if got, want := (&Error{Op: "list", Dest: "file:///b/", Err: ErrNotFound}).Error(), "list file:///b/: object not found"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
