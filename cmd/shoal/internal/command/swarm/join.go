package swarm

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

type joinOptions struct {
	token         string
	listenAddr    string
	advertiseAddr string
	availability  *opts.Enum
	dataPathAddr  string
}

func newJoinCommand(cli *command.Cli) *cobra.Command {
	o := &joinOptions{availability: opts.NewEnum("active", "active", "pause", "drain")}
	cmd := &cobra.Command{
		Use:   "join [OPTIONS] HOST:PORT",
		Short: "Join a swarm as a node and/or manager",
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runJoin(cmd, cli, o, args[0])
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.token, "token", "", "Token for entry into the swarm")
	flags.StringVar(&o.listenAddr, "listen-addr", "0.0.0.0:"+DefaultPort, "Listen address (format: <ip|interface>[:port])")
	flags.StringVar(&o.advertiseAddr, "advertise-addr", "", "Advertised address (format: <ip|interface>[:port])")
	flags.Var(o.availability, "availability", `Availability of the node ("active", "pause", "drain")`)
	addDataPathAddrFlag(flags, &o.dataPathAddr)
	return cmd
}

func runJoin(cmd *cobra.Command, cli *command.Cli, o *joinOptions, remote string) error {
	if err := validateDataPathAddr(o.dataPathAddr); err != nil {
		return err
	}
	if o.token == "" {
		return errors.New("--token is required to join a swarm; run 'shoal swarm join-token worker' on a manager to get one")
	}
	// Without --listen-addr the daemon's own --listen-addr applies.
	listen := ""
	if cmd.Flags().Changed("listen-addr") {
		var err error
		if listen, err = listenAddr(o.listenAddr); err != nil {
			return err
		}
	}
	cl, err := cli.Client()
	if err != nil {
		return err
	}
	resp, err := cl.Local.Join(cmd.Context(), &api.JoinRequest{
		RemoteAddr:    withPort(remote),
		JoinToken:     o.token,
		ListenAddr:    listen,
		AdvertiseAddr: o.advertiseAddr,
		Availability:  parseAvailability(o.availability.Value),
		DataPathAddr:  o.dataPathAddr,
	})
	if err != nil {
		return err
	}
	if resp.GetRole() == api.NodeRole_MANAGER {
		fmt.Fprintln(cli.Out, "This node joined a swarm as a manager.")
	} else {
		fmt.Fprintln(cli.Out, "This node joined a swarm as a worker.")
	}
	return nil
}
