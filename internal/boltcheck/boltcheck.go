// Package boltcheck checks a bbolt file's structure before it is opened, so
// a damaged file is reported with its name instead of crashing the daemon or
// being silently rolled back to an older transaction.
//
// bbolt keeps two meta pages and falls back to the older one when the newer
// fails its checksum. That fallback is right after a torn write at power
// loss, but it also hides real damage (flipped bytes, a file overwritten in
// part). shoal refuses to start from such a file and says how to recover;
// the caller decides the wording. Check is a pure function of the file and
// safe to call from any goroutine.
package boltcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

const (
	pageHeaderSize = 16
	magic          = 0xED0CDAED
	formatVersion  = 2
	metaSumLen     = 56 // bytes of the meta struct covered by its checksum
)

type meta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

// Check validates both meta pages of the bbolt file at path and that the
// file is as long as its newest meta page says. A missing or empty file is
// fine (it will be created). The error says what is wrong, without the path.
func Check(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	buf := make([]byte, pageHeaderSize+metaSumLen+8)
	if _, err := io.ReadFull(f, buf); err != nil {
		return fmt.Errorf("file is truncated to %d bytes", st.Size())
	}
	m0, err0 := parseMeta(buf)
	if err0 != nil {
		return fmt.Errorf("meta page 0: %v", err0)
	}
	if _, err := f.ReadAt(buf, int64(m0.pageSize)); err != nil {
		return fmt.Errorf("file is truncated to %d bytes", st.Size())
	}
	m1, err1 := parseMeta(buf)
	if err1 != nil {
		return fmt.Errorf("meta page 1: %v", err1)
	}
	newest := m0
	if m1.txid > m0.txid {
		newest = m1
	}
	if want := int64(newest.pgid) * int64(newest.pageSize); st.Size() < want {
		return fmt.Errorf("file is truncated: %d bytes, its meta page needs %d", st.Size(), want)
	}
	return nil
}

func parseMeta(page []byte) (meta, error) {
	m := page[pageHeaderSize:]
	if binary.LittleEndian.Uint32(m[0:]) != magic {
		return meta{}, errors.New("bad magic number (not a bbolt file, or overwritten)")
	}
	if v := binary.LittleEndian.Uint32(m[4:]); v != formatVersion {
		return meta{}, fmt.Errorf("unknown format version %d", v)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaSumLen])
	if h.Sum64() != binary.LittleEndian.Uint64(m[metaSumLen:]) {
		return meta{}, errors.New("checksum mismatch")
	}
	out := meta{
		pageSize: binary.LittleEndian.Uint32(m[8:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}
	if out.pageSize < 512 || out.pageSize > 1<<20 || out.pageSize&(out.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("implausible page size %d", out.pageSize)
	}
	return out, nil
}
