// Package unixsock opens the unix sockets a node serves (the control
// socket, the Docker Engine API socket) without stealing one that another
// live process serves: a socket file nobody answers on is a leftover of a
// daemon that died and is replaced; one that answers is refused. It holds no
// state; Listen is safe for concurrent use on different paths.
package unixsock
