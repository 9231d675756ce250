package swarm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newUnlockCommand(cli *command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Unlock swarm",
		Args:  command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUnlock(cmd, cli)
		},
	}
}

// runUnlock asks for the key only when the node is locked, as Docker does:
// from a prompt on a terminal (not echoed), else the first line of stdin.
func runUnlock(cmd *cobra.Command, cli *command.Cli) error {
	ctx := cmd.Context()
	cl, err := cli.Client()
	if err != nil {
		return err
	}
	info, err := cl.Local.Info(ctx, &api.InfoRequest{})
	if err != nil {
		return err
	}
	switch info.GetState() {
	case api.InfoResponse_INACTIVE:
		return errors.New("Error: This node is not part of a swarm")
	case api.InfoResponse_LOCKED:
	default:
		return errors.New("Error: swarm is not locked")
	}
	key, err := readKey(cli, "Enter unlock key: ")
	if err != nil {
		return err
	}
	_, err = cl.Local.Unlock(ctx, &api.UnlockRequest{UnlockKey: key})
	return err
}

func readKey(cli *command.Cli, prompt string) (string, error) {
	if f, ok := cli.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cli.Out, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cli.Out)
		return strings.TrimSpace(string(b)), err
	}
	key, err := bufio.NewReader(cli.In).ReadString('\n')
	if err == io.EOF {
		err = nil
	}
	return strings.TrimSpace(key), err
}

type unlockKeyOptions struct {
	rotate bool
	quiet  bool
}

func newUnlockKeyCommand(cli *command.Cli) *cobra.Command {
	o := &unlockKeyOptions{}
	cmd := &cobra.Command{
		Use:   "unlock-key [OPTIONS]",
		Short: "Manage the unlock key",
		Args:  command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUnlockKey(cmd, cli, o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&o.rotate, "rotate", false, "Rotate unlock key")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only display token")
	return cmd
}

func runUnlockKey(cmd *cobra.Command, cli *command.Cli, o *unlockKeyOptions) error {
	ctx := cmd.Context()
	c, err := cli.Control()
	if err != nil {
		return err
	}
	if o.rotate {
		cluster, err := getCluster(ctx, c)
		if err != nil {
			return err
		}
		if !cluster.GetSpec().GetEncryption().GetAutoLockManagers() {
			return errors.New("cannot rotate because autolock is not turned on")
		}
		_, err = c.UpdateCluster(ctx, &api.UpdateClusterRequest{
			ClusterId:      cluster.GetId(),
			ClusterVersion: cluster.GetMeta().GetVersion(),
			Spec:           cluster.GetSpec(),
			Rotation:       &api.KeyRotation{ManagerUnlockKey: true},
		})
		if err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprint(cli.Out, "Successfully rotated manager unlock key.\n\n")
		}
	}
	resp, err := c.GetUnlockKey(ctx, &api.GetUnlockKeyRequest{})
	if err != nil {
		return fmt.Errorf("could not fetch unlock key: %w", err)
	}
	if resp.GetUnlockKey() == "" {
		return errors.New("no unlock key is set")
	}
	if o.quiet {
		fmt.Fprintln(cli.Out, resp.GetUnlockKey())
		return nil
	}
	printUnlockCommand(cli.Out, resp.GetUnlockKey())
	return nil
}
