package overlay

import "errors"

// bindDefaults fills the library constructors left nil with the real
// libraries.
func bindDefaults(c *Config) error {
	if c.NewDatapath == nil || c.NewGossip == nil || c.NewDNS == nil || c.VIP == nil {
		return errors.New("overlay: the real libraries are not bound yet")
	}
	return nil
}
