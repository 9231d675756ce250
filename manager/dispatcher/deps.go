package dispatcher

import (
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// deps tracks the secrets and configs one node holds: exactly those its
// tasks that are meant to run reference. A node running no task that uses
// a secret never receives it, and loses it when the last such task goes.
type deps struct {
	store   *raftstore.Store
	tasks   map[string]*api.Task // the node's tasks that reference any, as last sent
	secrets map[string]bool      // sent to the node
	configs map[string]bool
}

func newDeps(store *raftstore.Store) *deps {
	return &deps{store: store, tasks: map[string]*api.Task{}, secrets: map[string]bool{}, configs: map[string]bool{}}
}

// track records a task's latest state (nil removes it). Only tasks that
// reference a secret or a config are kept: the others need nothing from
// changes, and a map entry for each task of every node was 30 MB of a
// leader's heap at 1,000,000 tasks, which changes walked at every send.
func (d *deps) track(id string, t *api.Task) {
	if t == nil || !needsDeps(t) {
		delete(d.tasks, id)
		return
	}
	d.tasks[id] = t
}

// needsDeps tells whether t references a secret or a config.
func needsDeps(t *api.Task) bool {
	c := t.GetSpec().GetContainer()
	return len(c.GetSecrets()) > 0 || len(c.GetConfigs()) > 0
}

// changes returns the secret and config changes that bring the node to what
// its tasks need now. Secrets are unsealed here and travel only over the
// node's mTLS stream.
func (d *deps) changes() []*api.AssignmentChange {
	if len(d.tasks) == 0 && len(d.secrets) == 0 && len(d.configs) == 0 {
		return nil // nothing needed, nothing to withdraw: no read of the store
	}
	needS, needC := map[string]bool{}, map[string]bool{}
	for _, t := range d.tasks {
		if t.DesiredState > api.TaskState_RUNNING {
			continue
		}
		for _, r := range t.GetSpec().GetContainer().GetSecrets() {
			needS[r.SecretId] = true
		}
		for _, r := range t.GetSpec().GetContainer().GetConfigs() {
			needC[r.ConfigId] = true
		}
	}
	var out []*api.AssignmentChange
	d.store.View(func(tx raftstore.ReadTx) {
		var key []byte
		if cs := tx.Clusters(); len(cs) > 0 {
			key = cs[0].SecretsKey
		}
		for id := range needS {
			if d.secrets[id] {
				continue
			}
			s := tx.Secret(id)
			if s == nil {
				continue
			}
			data, err := pki.Unseal(key, s.Sealed)
			if err != nil {
				continue
			}
			c := proto.Clone(s).(*api.Secret)
			c.Sealed = nil
			c.Spec.Data = data
			out = append(out, &api.AssignmentChange{Action: api.AssignmentChange_UPDATE, Assignment: &api.Assignment{Item: &api.Assignment_Secret{Secret: c}}})
			d.secrets[id] = true
		}
		for id := range needC {
			if d.configs[id] {
				continue
			}
			if c := tx.Config(id); c != nil {
				out = append(out, &api.AssignmentChange{Action: api.AssignmentChange_UPDATE, Assignment: &api.Assignment{Item: &api.Assignment_Config{Config: c}}})
				d.configs[id] = true
			}
		}
	})
	for id := range d.secrets {
		if !needS[id] {
			out = append(out, &api.AssignmentChange{Action: api.AssignmentChange_REMOVE, Assignment: &api.Assignment{Item: &api.Assignment_Secret{Secret: &api.Secret{Id: id}}}})
			delete(d.secrets, id)
		}
	}
	for id := range d.configs {
		if !needC[id] {
			out = append(out, &api.AssignmentChange{Action: api.AssignmentChange_REMOVE, Assignment: &api.Assignment{Item: &api.Assignment_Config{Config: &api.Config{Id: id}}}})
			delete(d.configs, id)
		}
	}
	return out
}
