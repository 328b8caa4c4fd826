package archive

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"filippo.io/age"
)

// dumpLike is n bytes that compress like a dump: repeated text with some
// randomness.
func dumpLike(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("INSERT 12345\t")
		for range 16 {
			b.WriteByte("abcdef0123456789"[r.IntN(16)])
		}
		b.WriteString("\tsome repeated text of a row\n")
	}
	return b.Bytes()[:n]
}

func TestCompressionRoundTrip(t *testing.T) {
	data := dumpLike(parallelAfter + 9<<20) // one core, then several: two frames (members)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Compression{Zstd, Gzip, None} {
		for _, encrypt := range []bool{false, true} {
			var stored bytes.Buffer
			var w io.Writer = &stored
			var enc io.WriteCloser
			if encrypt {
				enc, err = Encrypt(&stored, []age.Recipient{id.Recipient()})
				if err != nil {
					t.Fatal(err)
				}
				w = enc
			}
			level := map[Compression]int{Zstd: ZstdDefaultLevel, Gzip: GzipDefaultLevel}[c]
			comp, err := NewCompressor(w, c, level)
			if err != nil {
				t.Fatal(err)
			}
			// Small writes, as a pipe delivers them.
			for off := 0; off < len(data); off += 4000 {
				if _, err := comp.Write(data[off:min(off+4000, len(data))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := comp.Close(); err != nil {
				t.Fatal(err)
			}
			if enc != nil {
				enc.Close()
			}
			if c != None && stored.Len() > len(data)/2 {
				t.Errorf("%s: %d bytes from %d: barely compressed", c, stored.Len(), len(data))
			}
			var r io.Reader = bytes.NewReader(stored.Bytes())
			if encrypt {
				if bytes.Contains(stored.Bytes(), []byte("some repeated text")) {
					t.Errorf("%s encrypted: plaintext in the object", c)
				}
				if r, err = Decrypt(r, []age.Identity{id}); err != nil {
					t.Fatal(err)
				}
			}
			dec, err := NewDecompressor(r, c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(dec)
			if err != nil {
				t.Fatalf("%s encrypt=%v: %v", c, encrypt, err)
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Errorf("%s encrypt=%v: round trip differs", c, encrypt)
			}
			t.Logf("%s encrypt=%v: %d -> %d bytes (ratio %.2f)", c, encrypt, len(data), stored.Len(), float64(len(data))/float64(stored.Len()))
		}
	}
}

func TestCorruptStreamsFail(t *testing.T) {
	data := dumpLike(2 << 20)
	for _, c := range []Compression{Zstd, Gzip} {
		var stored bytes.Buffer
		comp, _ := NewCompressor(&stored, c, 3)
		comp.Write(data)
		comp.Close()
		b := stored.Bytes()
		b[len(b)/2] ^= 0x10
		dec, err := NewDecompressor(bytes.NewReader(b), c)
		if err == nil {
			_, err = io.ReadAll(dec)
		}
		if err == nil {
			t.Errorf("%s: a flipped byte decompressed without error", c)
		}
	}
}

func TestIdentities(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	file := "# created: 2026-11-22T03:00:00Z\r\n# public key: " + id.Recipient().String() + "\r\n" + id.String() + "\r\n"
	ids, err := ParseIdentities(file)
	if err != nil || len(ids) != 1 {
		t.Fatalf("ParseIdentities(age-keygen file) = %v, %v", ids, err)
	}
	_, err = ParseIdentities("AGE-SECRET-KEY-1NOTAKEY")
	if err == nil || strings.Contains(err.Error(), "NOTAKEY") {
		t.Errorf("a bad identity: %v (the error must not quote it)", err)
	}
	rs, keys, err := ParseRecipients("# ops\n" + id.Recipient().String() + ", " + id.Recipient().String() + "\n")
	if err != nil || len(rs) != 2 || len(keys) != 2 {
		t.Errorf("ParseRecipients = %d, %v", len(rs), err)
	}
	if _, _, err := ParseRecipients("age1nope"); err == nil {
		t.Error("ParseRecipients accepted a bad key")
	}
	other, _ := age.GenerateX25519Identity()
	var b bytes.Buffer
	w, _ := Encrypt(&b, []age.Recipient{id.Recipient()})
	w.Write([]byte("x"))
	w.Close()
	if _, err := Decrypt(bytes.NewReader(b.Bytes()), []age.Identity{other}); err == nil || !strings.Contains(err.Error(), "not one of the backup's recipients") {
		t.Errorf("wrong identity: %v", err)
	}
}
