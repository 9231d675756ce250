// Package swarm holds `shoal swarm init|join|join-token|leave|update|unlock|unlock-key`.
package swarm

import (
	"fmt"
	"io"
	"net"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

// DefaultPort is the cluster API port (Docker's is 2377).
const DefaultPort = "4242"

// NewCommand returns `shoal swarm`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return command.NewGroup("swarm", "Manage Swarm",
		newInitCommand(cli),
		newJoinCommand(cli),
		newJoinTokenCommand(cli),
		newLeaveCommand(cli),
		newUpdateCommand(cli),
		newUnlockCommand(cli),
		newUnlockKeyCommand(cli),
	)
}

// withPort adds the cluster port to an address that has none.
func withPort(addr string) string {
	if addr == "" {
		return addr
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(addr, DefaultPort)
}

// listenAddr normalizes --listen-addr: a missing host means 0.0.0.0, a
// missing port the cluster port.
func listenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, DefaultPort
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == "" {
		port = DefaultPort
	}
	return net.JoinHostPort(host, port), nil
}

// managerAddr is the address other nodes join through: this node's own
// manager address, else the first known manager, else its node address.
func managerAddr(info *api.InfoResponse) string {
	for _, m := range info.GetManagers() {
		if m.GetNodeId() == info.GetNodeId() && m.GetAddr() != "" {
			return m.GetAddr()
		}
	}
	for _, m := range info.GetManagers() {
		if m.GetAddr() != "" {
			return m.GetAddr()
		}
	}
	return withPort(info.GetNodeAddr())
}

func printJoinCommand(out io.Writer, role, token, addr string) {
	fmt.Fprintf(out, "To add a %s to this swarm, run the following command:\n\n    shoal swarm join --token %s %s\n\n", role, token, addr)
}

func printUnlockCommand(out io.Writer, key string) {
	if key == "" {
		return
	}
	fmt.Fprintf(out, "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n"+
		"command and provide the following key:\n\n    %s\n\n"+
		"Remember to store this key in a password manager, since without it you\n"+
		"will not be able to restart the manager.\n", key)
}
