package dashboard

import (
	"log/slog"
	"testing"
)

// A subscriber that falls behind by more than its queue is cut off; the
// others keep every message.
func TestSlowClientIsCutOff(t *testing.T) {
	h := newHub(nil, 2, slog.New(slog.DiscardHandler))
	slow, cancelSlow := h.subscribe()
	defer cancelSlow()
	fast, cancelFast := h.subscribe()
	defer cancelFast()
	for i := range 3 {
		h.publish(sseMsg{event: "change", data: []byte{byte('0' + i)}})
		if i < 2 {
			<-fast.c
		}
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("the slow subscriber was not cut off")
	}
	select {
	case <-fast.gone:
		t.Fatal("the fast subscriber was cut off")
	default:
	}
	if m := <-fast.c; string(m.data) != "2" {
		t.Fatalf("fast got %q", m.data)
	}
	h.mu.Lock()
	n := len(h.subs)
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d subscribers left, want 1", n)
	}
}
