package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Entry is one row of the replicated table: a task's attachment on an
// overlay network (IP, MAC, VTEP) and its service-endpoint facts (service,
// VIP, serving or draining).
//
// An entry's identity is (Network, Key, Owner). Only the owner writes it:
// Publish and Withdraw set Owner to the local NodeID, Generation to the local
// incarnation and Version to the next value of the local counter. The same
// Key published by two owners is two entries (for example a key that moved
// between nodes); consumers see both until one is withdrawn or dropped.
type Entry struct {
	Network string `json:"n"`
	Key     string `json:"k"`
	Owner   string `json:"o"`
	// Generation is the owner's incarnation (default: its start time in ns).
	// A higher Generation from an owner replaces all its older entries.
	Generation uint64 `json:"g"`
	// Version orders the owner's writes within a Generation.
	Version uint64 `json:"v"`
	// Deleted marks a tombstone; Entries never returns tombstones.
	Deleted bool `json:"d,omitempty"`

	IP          string   `json:"ip,omitempty"`
	MAC         string   `json:"mac,omitempty"`
	VTEP        string   `json:"vt,omitempty"`
	ServiceID   string   `json:"sid,omitempty"`
	ServiceName string   `json:"sn,omitempty"`
	TaskName    string   `json:"tn,omitempty"`
	Aliases     []string `json:"al,omitempty"`
	VIP         string   `json:"vip,omitempty"`
	Draining    bool     `json:"dr,omitempty"`
	// Ports are the task's ports published through the routing mesh
	// (ingress mode; host-mode ports are local and not gossiped).
	Ports []Port `json:"pt,omitempty"`
}

// Port is one published port of an entry's task, compact on the wire.
type Port struct {
	Proto      string `json:"p"` // "tcp" | "udp"
	Published  uint16 `json:"o"`
	Target     uint16 `json:"t"`
	Masquerade bool   `json:"m,omitempty"`
	Host       bool   `json:"h,omitempty"` // host mode (not normally gossiped)
}

type entryID struct{ network, key, owner string }

func (e *Entry) id() entryID { return entryID{e.Network, e.Key, e.Owner} }

// newer reports whether (Generation, Version) of e is strictly above o's.
func (e *Entry) newer(o *Entry) bool {
	if e.Generation != o.Generation {
		return e.Generation > o.Generation
	}
	return e.Version > o.Version
}

// sameContent reports whether the payload a consumer sees is equal
// (identity, ordering fields excluded).
func (e *Entry) sameContent(o *Entry) bool {
	return e.Deleted == o.Deleted && e.IP == o.IP && e.MAC == o.MAC && e.VTEP == o.VTEP &&
		e.ServiceID == o.ServiceID && e.ServiceName == o.ServiceName && e.TaskName == o.TaskName &&
		slices.Equal(e.Aliases, o.Aliases) && e.VIP == o.VIP && e.Draining == o.Draining &&
		slices.Equal(e.Ports, o.Ports)
}

func (e Entry) clone() Entry {
	e.Aliases = slices.Clone(e.Aliases)
	e.Ports = slices.Clone(e.Ports)
	return e
}

func (e *Entry) check() error {
	switch {
	case e.Network == "":
		return errors.New("entry has no network")
	case e.Key == "":
		return errors.New("entry has no key")
	case e.Owner == "":
		return errors.New("entry has no owner")
	case e.Generation == 0:
		return errors.New("entry has generation 0")
	}
	return nil
}

// Wire format.
//
// Messages are encoding/json with one-to-three-letter field names behind a
// one-byte type. JSON was chosen over a hand-made binary format because it is
// self-describing (a field added later is ignored by older nodes, which
// matters during rolling upgrades), easy to inspect when debugging, and its
// cost is small here: an entry is ~150-250 bytes, memberlist compresses
// packets and push-pull state (EnableCompression), and the table of a node is
// thousands of entries at most. A binary format would roughly halve the
// size of a packet's entries; if broadcast volume ever matters it can be a
// new message type.
const (
	msgEntry byte = 1 // one Entry (a broadcast)
	msgState byte = 2 // push-pull state: {"e":[Entry...]}
	msgBatch byte = 3 // a burst of one owner's writes sent directly, same body as msgState
)

type stateMsg struct {
	Entries []json.RawMessage `json:"e"`
}

func encodeEntry(e *Entry) []byte {
	b, err := json.Marshal(e)
	if err != nil { // cannot happen: Entry has only strings, bools and numbers
		panic(fmt.Sprintf("gossip: encode entry: %v", err))
	}
	return append([]byte{msgEntry}, b...)
}

func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	if len(b) == 0 || b[0] != msgEntry {
		return e, errors.New("not an entry message")
	}
	if err := json.Unmarshal(b[1:], &e); err != nil {
		return e, fmt.Errorf("decode entry: %w", err)
	}
	return e, e.check()
}

// encodeState encodes entries in order until the encoded size would exceed
// maxBytes; it returns the message and how many entries were left out.
func encodeState(entries []*Entry, maxBytes int) ([]byte, int) {
	var msg stateMsg
	size := 16
	for i, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			panic(fmt.Sprintf("gossip: encode entry: %v", err))
		}
		if size+len(b)+1 > maxBytes {
			out, _ := json.Marshal(msg)
			return append([]byte{msgState}, out...), len(entries) - i
		}
		size += len(b) + 1
		msg.Entries = append(msg.Entries, b)
	}
	out, _ := json.Marshal(msg)
	return append([]byte{msgState}, out...), 0
}

func decodeState(b []byte) ([]Entry, error) {
	if len(b) == 0 || b[0] != msgState && b[0] != msgBatch {
		return nil, errors.New("not a state message")
	}
	var msg stateMsg
	if err := json.Unmarshal(b[1:], &msg); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	out := make([]Entry, 0, len(msg.Entries))
	for _, raw := range msg.Entries {
		var e Entry
		if err := json.Unmarshal(raw, &e); err != nil || e.check() != nil {
			continue // one bad entry does not spoil the rest
		}
		out = append(out, e)
	}
	return out, nil
}
