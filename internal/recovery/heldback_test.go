package recovery

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// The reader downstream gets every byte but the last until verify passed,
// and never the last one (nor the end) when it fails.
func TestHeldBack(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10000)
	for _, name := range []string{"whole", "one byte at a time", "half"} {
		var src io.Reader = bytes.NewReader(data)
		switch name {
		case "one byte at a time":
			src = iotest.OneByteReader(src)
		case "half":
			src = iotest.HalfReader(src)
		}
		verified := false
		h := &heldBack{src: src, verify: func() error { verified = true; return nil }, diagnose: func(err error) error { return err }}
		got, err := io.ReadAll(h)
		if err != nil || !bytes.Equal(got, data) || !verified {
			t.Errorf("%s: %d bytes, err %v, verified %v", name, len(got), err, verified)
		}

		bad := errors.New("sha256 mismatch")
		h = &heldBack{src: iotest.OneByteReader(bytes.NewReader(data)), verify: func() error { return bad }, diagnose: func(err error) error { return err }}
		var out bytes.Buffer
		_, err = io.Copy(&out, h)
		if !errors.Is(err, bad) || out.Len() != len(data)-1 {
			t.Errorf("%s failing verify: got %d bytes (want %d: all but the last), err %v", name, out.Len(), len(data)-1, err)
		}
	}
	// An empty stream: nothing to hold, verify still decides.
	h := &heldBack{src: bytes.NewReader(nil), verify: func() error { return errors.New("no") }, diagnose: func(err error) error { return err }}
	if _, err := io.ReadAll(h); err == nil {
		t.Error("empty stream with failing verify ended well")
	}
	// A broken stream is diagnosed.
	h = &heldBack{src: iotest.ErrReader(errors.New("broken")), verify: func() error { return nil }, diagnose: func(err error) error { return errors.New("diagnosed: " + err.Error()) }}
	if _, err := io.ReadAll(h); err == nil || err.Error() != "diagnosed: broken" {
		t.Errorf("broken stream: %v", err)
	}
}
