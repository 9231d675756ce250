// Package convert translates between shoal's proto objects and the Docker
// Engine API's types (github.com/moby/moby/api, types/swarm and
// types/network): services, tasks, nodes, networks, secrets and configs
// (the swarm object itself is in swarm.go). It is pure: no I/O, no state,
// no goroutines; every function is safe for concurrent use and does not
// keep or change its arguments (outputs share no slices or maps with them).
//
// Direction and errors. XToMoby functions never fail: everything shoal
// stores has a Docker form. XFromMoby functions return an error of class
// errdefs.ErrInvalidArgument (HTTP 400) that names the JSON field, e.g.
// "TaskTemplate.ContainerSpec.Privileges.SELinuxContext is not supported
// by shoal: ...", for any Docker field that is set and that shoal cannot
// honour; a field is never dropped silently unless Docker itself ignores it
// on Linux swarm nodes. Zero values Docker's clients send by default (the
// CLI's "Privileges":{"CredentialSpec":null,"SELinuxContext":null}, "Init":
// false, "DNSConfig":{}) are accepted. Enum strings are lowercase as Docker
// writes them; an empty string means Docker's default (tcp, ingress, vip,
// restart condition any, failure action pause, order stop-first). A spec
// without a mode, or Replicated without Replicas, is one replica, as in
// Docker. Network targets in a TaskTemplate are kept as given (ID or name):
// the handler resolves names. Timestamps are UTC (RFC 3339 with nanoseconds
// once encoded); Version.Index is shoal's Meta.Version.
//
// Helpers for handlers: ServiceSpecWithDefaults (?insertDefaults=true),
// CountTasks and ServiceStatus (?status=true), KeepShoalOnly (updates),
// NodeSpecFromMoby (keeps what Docker's NodeSpec lacks), TLSInfoFromCA,
// ServiceSpecRequest and NetworkCreateRequest (the create/update bodies,
// with the fields API 1.41 clients send that the moby types dropped, so
// strict decoding accepts them: top-level ServiceSpec.Networks, moved into
// TaskTemplate.Networks; CheckDuplicate, ignored), and the enum
// parsers for filters (TaskStateFromMoby, NodeRoleFromMoby,
// NodeMembershipFromMoby, ServiceMode). A task's networks are filled from
// a NetworkLookup the handler builds; conversion itself never calls out.
//
// Docker fields shoal refuses (when set to anything but their zero value):
//
//	field                                             why
//	ContainerSpec.Privileges.CredentialSpec           Windows gMSA only
//	ContainerSpec.Privileges.SELinuxContext           tasks get no SELinux labels
//	ContainerSpec.Privileges.Seccomp (not default)    runtime default profile only
//	ContainerSpec.Privileges.AppArmor (not default)   runtime default profile only
//	ContainerSpec.Privileges.NoNewPrivileges          not set on task processes yet
//	ContainerSpec.Isolation (not default)             Windows only
//	ContainerSpec.OomScoreAdj                         not set on task processes
//	ContainerSpec.Configs[].Runtime                   Windows credential specs only
//	Mounts[].Type npipe, cluster, image               bind, volume, tmpfs only
//	Mounts[].BindOptions (not rprivate)               bind mounts are rprivate
//	Mounts[].VolumeOptions NoCopy/Labels/Subpath      local volumes without options
//	Mounts[].VolumeOptions.DriverConfig               only the local driver
//	Mounts[].TmpfsOptions.Options                     only SizeBytes and Mode
//	TaskTemplate.PluginSpec, NetworkAttachmentSpec, Runtime other than container
//	TaskTemplate.Resources.SwapBytes                  swap is not limited
//	TaskTemplate.Resources.MemorySwappiness           not set
//	TaskTemplate.Resources.Reservations.GenericResources[].NamedResourceSpec
//	                                                  only counted (discrete) ones
//	TaskTemplate.Networks[].DriverOpts                overlay attachments take none
//	Secret Driver, Secret/Config Templating           data stored and mounted as given
//	network create: Driver other than overlay, Scope local, EnableIPv4 false,
//	  ConfigOnly, ConfigFrom, IPAM.Driver other than default, IPAM.Options,
//	  IPAM.Config[].AuxiliaryAddresses, Options vxlanid_list
//
// Docker fields shoal accepts and ignores, as Docker's Linux daemon does:
// Mounts[].Consistency (a macOS hint), network create's CheckDuplicate
// (names are always unique; NetworkCreateRequest carries it so strict
// decoding accepts old clients' bodies).
//
// Shoal settings Docker's types cannot carry, so reads do not show them:
// PortConfig.masquerade, NetworkAttachmentConfig.addresses, reservation
// Pids and limit generic resources, NodeSpec.membership (kept from the
// current spec on update), ContainerStatus.addresses. KeepShoalOnly puts the
// first two back into a spec a Docker client sends on update, so a
// read-modify-write does not reset them. Node TLSInfo comes from the root
// CA (TLSInfoFromCA); Engine.Plugins lists shoal's drivers (log json-file
// and local, network overlay, volume local). A task's assigned
// GenericResources are not tracked by shoal and stay empty.
package convert
