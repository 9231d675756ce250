package testutil

import (
	"io"
	"net/http"
	"time"
)

// HTTPGet fetches url with a 10 s deadline and returns the status code and
// body.
func HTTPGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
