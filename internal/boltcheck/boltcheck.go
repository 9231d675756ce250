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
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

// Page flags and element sizes of bbolt's format.
const (
	flagBranch     = 0x01
	flagLeaf       = 0x02
	flagFreelist   = 0x10
	bucketLeafFlag = 0x01
	elemSize       = 16
	bucketHdrSize  = 16
	noFreelist     = ^uint64(0)
	maxDepth       = 64
)

// Check validates both meta pages of the bbolt file at path, that the file
// is as long as its newest meta page says, and the structure of every page
// reachable from it (headers, element bounds, child pointers, freelist). A missing or empty file is
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
	w := &walker{f: f, m: newest, seen: map[uint64]bool{}}
	if err := w.page(newest.root, 0); err != nil {
		return err
	}
	if newest.freelist != noFreelist {
		if err := w.freelist(newest.freelist); err != nil {
			return err
		}
	}
	return nil
}

// walker visits every page reachable from the root bucket, checking each
// one's header and element bounds, so that bbolt never follows a garbled
// pointer (it panics on those, sometimes in goroutines of its own).
type walker struct {
	f    *os.File
	m    meta
	seen map[uint64]bool
}

func (w *walker) read(id uint64) ([]byte, error) {
	if id < 2 || id >= w.m.pgid {
		return nil, fmt.Errorf("page %d is outside the file's %d pages", id, w.m.pgid)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(hdr, int64(id)*int64(w.m.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d cannot be read: %v", id, err)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if binary.LittleEndian.Uint64(hdr) != id {
		return nil, fmt.Errorf("page %d identifies itself as %d", id, binary.LittleEndian.Uint64(hdr))
	}
	if id+overflow >= w.m.pgid {
		return nil, fmt.Errorf("page %d overflows past the end of the file", id)
	}
	buf := make([]byte, (overflow+1)*uint64(w.m.pageSize))
	if _, err := w.f.ReadAt(buf, int64(id)*int64(w.m.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d cannot be read: %v", id, err)
	}
	return buf, nil
}

func (w *walker) page(id uint64, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("page tree deeper than %d levels (a loop?)", maxDepth)
	}
	if w.seen[id] {
		return fmt.Errorf("page %d is referenced twice", id)
	}
	w.seen[id] = true
	buf, err := w.read(id)
	if err != nil {
		return err
	}
	return w.elements(id, buf, depth)
}

// elements checks a branch or leaf page held in buf (a file page, or an
// inline bucket's page inside a value).
func (w *walker) elements(id uint64, buf []byte, depth int) error {
	if len(buf) < pageHeaderSize {
		return fmt.Errorf("page %d is shorter than its header", id)
	}
	flags := binary.LittleEndian.Uint16(buf[8:])
	count := int(binary.LittleEndian.Uint16(buf[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return fmt.Errorf("page %d has flags %#x, expected a branch or leaf page", id, flags)
	}
	if pageHeaderSize+count*elemSize > len(buf) {
		return fmt.Errorf("page %d claims %d elements, more than fit", id, count)
	}
	for i := 0; i < count; i++ {
		off := pageHeaderSize + i*elemSize
		e := buf[off : off+elemSize]
		if flags == flagBranch {
			pos, ksize := int(binary.LittleEndian.Uint32(e[0:])), int(binary.LittleEndian.Uint32(e[4:]))
			if off+pos+ksize > len(buf) || pos < 0 || ksize < 0 {
				return fmt.Errorf("page %d element %d points outside the page", id, i)
			}
			if err := w.page(binary.LittleEndian.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		eflags := binary.LittleEndian.Uint32(e[0:])
		pos := int(binary.LittleEndian.Uint32(e[4:]))
		ksize := int(binary.LittleEndian.Uint32(e[8:]))
		vsize := int(binary.LittleEndian.Uint32(e[12:]))
		end := off + pos + ksize + vsize
		if pos < 0 || ksize < 0 || vsize < 0 || end > len(buf) || end < off {
			return fmt.Errorf("page %d element %d points outside the page", id, i)
		}
		if eflags&bucketLeafFlag == 0 {
			continue
		}
		v := buf[off+pos+ksize : end]
		if len(v) < bucketHdrSize {
			return fmt.Errorf("page %d element %d: bucket header too short", id, i)
		}
		root := binary.LittleEndian.Uint64(v)
		if root == 0 { // inline bucket: its page follows the header
			if err := w.elements(id, v[bucketHdrSize:], depth+1); err != nil {
				return err
			}
			continue
		}
		if err := w.page(root, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) freelist(id uint64) error {
	buf, err := w.read(id)
	if err != nil {
		return fmt.Errorf("freelist: %v", err)
	}
	if flags := binary.LittleEndian.Uint16(buf[8:]); flags != flagFreelist {
		return fmt.Errorf("freelist page %d has flags %#x", id, flags)
	}
	count := uint64(binary.LittleEndian.Uint16(buf[10:]))
	start := uint64(pageHeaderSize)
	if count == 0xFFFF {
		if len(buf) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d is too short", id)
		}
		count = binary.LittleEndian.Uint64(buf[pageHeaderSize:])
		start += 8
	}
	if start+count*8 > uint64(len(buf)) || count > uint64(len(buf)) {
		return fmt.Errorf("freelist page %d claims %d entries, more than fit", id, count)
	}
	for i := uint64(0); i < count; i++ {
		if p := binary.LittleEndian.Uint64(buf[start+i*8:]); p < 2 || p >= w.m.pgid {
			return fmt.Errorf("freelist names page %d, outside the file", p)
		}
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
		root:     binary.LittleEndian.Uint64(m[16:]),
		freelist: binary.LittleEndian.Uint64(m[32:]),
		pgid:     binary.LittleEndian.Uint64(m[40:]),
		txid:     binary.LittleEndian.Uint64(m[48:]),
	}
	if out.pageSize < 512 || out.pageSize > 1<<20 || out.pageSize&(out.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("implausible page size %d", out.pageSize)
	}
	return out, nil
}
