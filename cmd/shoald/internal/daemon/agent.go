package daemon

// startAgent starts the node agent (worker). Until the agent lands this
// records the managers the node knows.
func (n *nodeRun) startAgent() {
	if len(n.managers) == 0 && n.manager != nil {
		n.managers = []string{n.state.AdvertiseAddr}
	}
}

// knownManagers lists the manager addresses the agent uses.
func (n *nodeRun) knownManagers() []string {
	n.agentMu.Lock()
	defer n.agentMu.Unlock()
	return append([]string(nil), n.managers...)
}
