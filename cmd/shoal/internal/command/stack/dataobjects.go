package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command/config"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/dataobj"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/secret"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
	api "github.com/shoal-project/shoal/proto"
)

// declared is what a deploy needs of a secret or config the stack declares.
type declared struct {
	key, name string
	external  bool
	spec      *api.Annotations
	data      []byte
}

// dataObjects are the stack's secrets or configs (P) during a deploy, with
// the daemon's kind of object (T) they become.
type dataObjects[P any, T dataobj.Object] struct {
	kind    *dataobj.Kind[T]
	planned []P
	declare func(P) declared
	// sameData tells whether an existing object holds p's data.
	sameData func(cur T, p P) bool
	// ids receives the IDs of the objects found or created, by name.
	ids map[string]string
	// missing are the objects check found to create.
	missing []P
}

func newSecrets(plan []*stack.Secret, ids map[string]string) *dataObjects[*stack.Secret, *api.Secret] {
	return &dataObjects[*stack.Secret, *api.Secret]{
		kind: secret.Kind, planned: plan, ids: ids,
		declare: func(s *stack.Secret) declared {
			return declared{s.Key, s.Name, s.External, s.Spec.GetAnnotations(), s.Spec.GetData()}
		},
		sameData: func(cur *api.Secret, s *stack.Secret) bool {
			sum := sha256.Sum256(s.Spec.GetData())
			return cur.GetDigest() == "" || cur.GetDigest() == hex.EncodeToString(sum[:])
		},
	}
}

func newConfigs(plan []*stack.Config, ids map[string]string) *dataObjects[*stack.Config, *api.Config] {
	return &dataObjects[*stack.Config, *api.Config]{
		kind: config.Kind, planned: plan, ids: ids,
		declare: func(c *stack.Config) declared {
			return declared{c.Key, c.Name, c.External, c.Spec.GetAnnotations(), c.Spec.GetData()}
		},
		sameData: func(cur *api.Config, c *stack.Config) bool {
			return bytes.Equal(cur.GetSpec().GetData(), c.Spec.GetData())
		},
	}
}

// check looks the objects up by name: an external one must exist, an
// existing one must belong to the stack and hold the same data (secrets and
// configs cannot change); the others are to be created.
func (o *dataObjects[P, T]) check(ctx context.Context, d *deployer) error {
	if len(o.planned) == 0 {
		return nil
	}
	var names []string
	for _, p := range o.planned {
		names = append(names, o.declare(p).name)
	}
	objs, err := o.kind.List(ctx, d.c, &api.ListFilters{Names: names})
	if err != nil {
		return err
	}
	byName := map[string]T{}
	for _, obj := range objs {
		byName[o.kind.Annotations(obj).GetName()] = obj
	}
	k := o.kind.Name
	for _, p := range o.planned {
		decl := o.declare(p)
		cur, ok := byName[decl.name]
		switch {
		case decl.external && !ok:
			return fmt.Errorf("%[1]s %[2]s declared as external, but could not be found. You need to create a %[1]s with the name %[2]s first (shoal %[1]s create %[2]s FILE)", k, decl.name)
		case decl.external:
			o.ids[decl.name] = cur.GetId()
		case !ok:
			o.missing = append(o.missing, p)
		case !inStack(o.kind.Annotations(cur).GetLabels(), d.plan.Stack):
			return fmt.Errorf("%[1]s %[2]s already exists and is not part of stack %[3]s: remove it, give the %[1]s another name (name: in the file), or declare it external: true", k, decl.name, d.plan.Stack)
		case !o.sameData(cur, p):
			return fmt.Errorf("%[1]s %[2]s already exists with other content, and %[1]ss cannot be changed: give the new version another name (e.g. name: %[2]s_v2 under %[1]ss.%[3]s in the file) and deploy again", k, decl.name, decl.key)
		default:
			o.ids[decl.name] = cur.GetId()
		}
	}
	return nil
}

// create creates the objects check found missing, saying so.
func (o *dataObjects[P, T]) create(ctx context.Context, d *deployer) error {
	for _, p := range o.missing {
		decl := o.declare(p)
		fmt.Fprintf(d.cli.Out, "Creating %s %s\n", o.kind.Name, decl.name)
		id, err := o.kind.Create(ctx, d.c, decl.spec, decl.data)
		if err != nil {
			return fmt.Errorf("failed to create %s %s: %w", o.kind.Name, decl.name, err)
		}
		o.ids[decl.name] = id
	}
	return nil
}
