package storage

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidKey is wrapped by CheckKey and CheckPrefix, and so by every
// Store method given a key that cannot name an object.
var ErrInvalidKey = errors.New("invalid key")

// CheckKey reports whether key can name an object in every Store: a
// non-empty slash-separated path of non-empty segments, none of them "." or
// "..", without a leading or trailing slash. The same rules in both stores
// keep a folder (where ".." would escape the root) and a bucket
// interchangeable.
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	for _, seg := range strings.Split(key, "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, err)
		}
	}
	return nil
}

// CheckPrefix reports whether prefix can select keys in List and Pending:
// "" (everything), or a key's first characters. Every segment but the last
// follows CheckKey's rules; the last may be partial or empty ("acme/",
// "acme/2026").
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	segs := strings.Split(prefix, "/")
	for _, seg := range segs[:len(segs)-1] {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("%w: prefix %q: %s", ErrInvalidKey, prefix, err)
		}
	}
	if strings.ContainsRune(prefix, 0) {
		return fmt.Errorf("%w: prefix %q: contains a NUL byte", ErrInvalidKey, prefix)
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return errors.New("empty path segment (leading, trailing or doubled slash)")
	case seg == "." || seg == "..":
		return errors.New(`"." and ".." segments are not allowed`)
	case strings.ContainsRune(seg, 0):
		return errors.New("contains a NUL byte")
	}
	return nil
}
