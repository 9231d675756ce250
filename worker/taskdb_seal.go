package worker

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/pki"
)

// Record values of the task db are either plain protobuf (layout 1, and
// layout 2 without a key) or sealed (layout 2 with Config.TaskDBKey):
//
//	0x00 'S' '1' || pki.Seal(key, <task ID> 0x00 <value name> 0x00 || protobuf)
//
// A protobuf encoding never starts with 0x00 (field number 0 does not
// exist), so the two cannot be confused. The task ID and value name inside
// the sealed text bind a value to its place: a value copied to another
// task's bucket does not open there.
var sealedPrefix = []byte{0x00, 'S', '1'}

// errRecordSealed and friends are the reasons a value does not open.
var (
	errSealedNoKey   = errors.New("it is sealed and no task db key was given")
	errSealedBadKey  = errors.New("it does not open with the task db key (sealed with another key, or altered)")
	errSealedMisfile = errors.New("it was sealed for another record")
)

// sealer seals and opens the task db's values; a nil key writes plaintext.
type sealer struct{ key []byte }

func recordBinding(id string, name []byte) []byte {
	b := make([]byte, 0, len(id)+len(name)+2)
	b = append(b, id...)
	b = append(b, 0)
	b = append(b, name...)
	return append(b, 0)
}

// seal encodes m for the value name of task id.
func (s sealer) seal(id string, name []byte, m proto.Message) ([]byte, error) {
	raw, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	if s.key == nil {
		return raw, nil
	}
	sealed, err := pki.Seal(s.key, append(recordBinding(id, name), raw...))
	if err != nil {
		return nil, fmt.Errorf("seal the %s of task %s: %w", name, id, err)
	}
	return append(append([]byte(nil), sealedPrefix...), sealed...), nil
}

// open decodes a value into m. plain tells whether the value was stored
// unsealed (to be sealed again when a key is set).
func (s sealer) open(id string, name, raw []byte, m proto.Message) (plain bool, err error) {
	if !bytes.HasPrefix(raw, sealedPrefix) {
		if err := proto.Unmarshal(raw, m); err != nil {
			return true, fmt.Errorf("it does not decode: %w", err)
		}
		return true, nil
	}
	if s.key == nil {
		return false, errSealedNoKey
	}
	text, err := pki.Unseal(s.key, raw[len(sealedPrefix):])
	if err != nil {
		return false, errSealedBadKey
	}
	bind := recordBinding(id, name)
	if !bytes.HasPrefix(text, bind) {
		return false, errSealedMisfile
	}
	if err := proto.Unmarshal(text[len(bind):], m); err != nil {
		return false, fmt.Errorf("it does not decode: %w", err)
	}
	return false, nil
}
