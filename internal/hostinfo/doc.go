// Package hostinfo reads facts about the machine a node runs on that the
// kernel publishes in /proc: today its total memory. It holds no state;
// its functions are safe for concurrent use.
package hostinfo
