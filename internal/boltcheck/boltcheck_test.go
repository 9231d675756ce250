package boltcheck

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func makeDB(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.db")
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte{byte(i)}, make([]byte, 5000))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	if err := Check(filepath.Join(t.TempDir(), "missing.db")); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	p := makeDB(t)
	if err := Check(p); err != nil {
		t.Fatalf("healthy file: %v", err)
	}
	page := int64(os.Getpagesize())
	cases := map[string]func(f *os.File){
		"meta0 flipped": func(f *os.File) { f.WriteAt([]byte{0xff, 0xee}, 40) },
		"meta1 flipped": func(f *os.File) { f.WriteAt([]byte{0xff, 0xee}, page+40) },
		"overwritten":   func(f *os.File) { f.WriteAt(make([]byte, 2*page), page) },
		"truncated":     func(f *os.File) { f.Truncate(3 * page) },
		"tiny":          func(f *os.File) { f.Truncate(30) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			p := makeDB(t)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			damage(f)
			f.Close()
			if err := Check(p); err == nil {
				t.Fatal("damage not detected")
			} else {
				t.Log(err)
			}
		})
	}
}
