package raftstore

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// Large transactions and snapshots are deflated: thousands of tasks that
// carry the same spec compress about 7×, which divides the raft log's disk
// use, its fsyncs' bytes and what followers receive. Small ones are left
// as they are (compressing them gains nothing worth the CPU).
const compressAbove = 16 << 10

// deflate compresses b at BestSpeed; ok is false when that does not save
// at least an eighth (the caller then keeps b).
func deflate(b []byte) (out []byte, ok bool) {
	if len(b) < compressAbove {
		return nil, false
	}
	var buf bytes.Buffer
	buf.Grow(len(b) / 4)
	w := deflaters.Get().(*flate.Writer)
	defer func() {
		w.Reset(io.Discard) // the pool must not keep buf (a snapshot's, tens of MB) alive
		deflaters.Put(w)
	}()
	w.Reset(&buf)
	if _, err := w.Write(b); err != nil {
		return nil, false
	}
	if err := w.Close(); err != nil || buf.Len() > len(b)-len(b)/8 {
		return nil, false
	}
	return buf.Bytes(), true
}

// deflaters and inflaters keep flate's compressors and decompressors for
// reuse: a new BestSpeed writer allocates about 1 MB of tables, which was
// 14 % of the bytes a leader allocated while creating tasks (every large
// transaction is deflated once when proposed). Reset makes a reused one
// the same as a new one.
var (
	deflaters = sync.Pool{New: func() any {
		w, err := flate.NewWriter(io.Discard, flate.BestSpeed)
		if err != nil {
			panic(err) // only for a level out of range
		}
		return w
	}}
	inflaters sync.Pool // of io.ReadCloser that are flate.Resetter
)

// inflate decompresses b, refusing output beyond limit bytes (a corrupt or
// hostile entry must not make a replica allocate without bound).
func inflate(b []byte, limit int64) ([]byte, error) {
	var r io.ReadCloser
	if v, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := v.(flate.Resetter).Reset(bytes.NewReader(b), nil); err == nil {
			r = v
		}
	}
	if r == nil {
		r = flate.NewReader(bytes.NewReader(b))
	}
	defer func() {
		r.Close()
		if r.(flate.Resetter).Reset(bytes.NewReader(nil), nil) == nil { // so that the pool does not keep b alive
			inflaters.Put(r)
		}
	}()
	buf := inflateBufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if int64(buf.Len()) > limit && err == nil {
		err = fmt.Errorf("inflates to more than %d bytes", limit)
	} else if err != nil {
		err = fmt.Errorf("inflate: %w", err)
	}
	if buf.Cap() > maxPooledInflate {
		// A snapshot: its buffer is the result, not kept.
		if err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	defer inflateBufs.Put(buf)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// inflateBufs keeps inflate's output buffers up to maxPooledInflate (a
// transaction's cap): a transaction inflates into a reused buffer and is
// copied out at its exact size, where growing a new buffer to fit
// allocated about twice its size each time.
var inflateBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledInflate = 2 * MaxTransactionBytes

// snapshotDeflated marks deflated snapshot data. A protobuf message never
// starts with a byte whose low three bits are 7 (no such wire type), so
// the mark cannot be mistaken for snapshot data written in clear.
var snapshotDeflated = []byte{0xff, 'z', 1}

// maxSnapshotBytes bounds the inflated size of a snapshot.
const maxSnapshotBytes = 8 << 30

func encodeSnapshotData(raw []byte) []byte {
	if z, ok := deflate(raw); ok {
		return append(append(make([]byte, 0, len(snapshotDeflated)+len(z)), snapshotDeflated...), z...)
	}
	return raw
}

func decodeSnapshotData(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, snapshotDeflated) {
		return data, nil
	}
	return inflate(data[len(snapshotDeflated):], maxSnapshotBytes)
}

// transactionPayload returns the encoded transaction an entry of cmd
// carries.
func transactionPayload(cmd Command, payload []byte) ([]byte, error) {
	if cmd == CmdTransactionDeflated {
		return inflate(payload, MaxTransactionBytes)
	}
	return payload, nil
}

// TransactionOf returns the encoded transaction (for Store.Apply) that a
// proposal carries, and false for a command that carries none. For
// Proposers other than Node (tests, the standalone store).
func TransactionOf(cmd Command, payload []byte) (tx []byte, ok bool, err error) {
	if cmd != CmdTransaction && cmd != CmdTransactionDeflated {
		return nil, false, nil
	}
	tx, err = transactionPayload(cmd, payload)
	return tx, true, err
}
