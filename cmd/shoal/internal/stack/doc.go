// Package stack turns Compose files into the networks, secrets, configs and
// services of a shoal stack, the way `docker stack deploy` does. It is pure:
// it reads the files it is given and nothing else talks to a daemon, so the
// conversion can move server-side later without a rewrite.
//
// # Pipeline
//
//  1. Read each -c file (or stdin for "-"), refusing more than MaxFileSize
//     bytes.
//  2. Parse it with go.yaml.in/yaml/v4 (the parser compose-go uses) into a
//     node tree and count what its aliases expand to; a file whose aliases
//     add more than MaxAliasExpansion nodes, or whose aliases are recursive,
//     is refused as an alias bomb before anything expands it. YAML tags
//     other than the standard ones (compose's !reset and !override) are
//     refused.
//  3. Scan each file's raw model for the keys docker stack deploy ignores,
//     deprecates or rejects, and produce Docker's three messages:
//     "Ignoring unsupported options: …", "Ignoring deprecated options: …"
//     and the error "Compose file contains unsupported options: …", each
//     rejected key followed by where it is and how to fix it. Ignored keys
//     are removed before loading, so they cannot change what is deployed
//     (compose-go would, for example, turn links into depends_on).
//  4. Load the files with compose-go v2 in order (later files override
//     earlier ones), interpolating ${VAR}, ${VAR:-default}, ${VAR:?error}
//     and $$ from the environment and from a .env file in the working
//     directory (the environment wins). The working directory is the
//     directory of the first file (the current directory for stdin);
//     relative paths in the files are taken from it. env_file entries are
//     read here, capped like stack files.
//  5. Convert (a pure function of the project and the stack name) builds a
//     Plan: every object named <stack>_<name> and labelled
//     io.shoal.stack.namespace=<stack>, external objects by their plain
//     name, services in depends_on order. The conversion is deterministic:
//     converting the same files twice gives identical specs, so a redeploy
//     of an unchanged file changes nothing.
//
// # Decisions that differ from Docker
//
//   - depends_on is honoured: services are created in dependency order, and
//     the deploy command waits for a dependency to converge (to be healthy
//     when it has a health check) before creating its dependants. A cycle
//     is an error naming the services.
//   - extends is accepted when it names a service of the same file (as
//     docker compose resolves it) and a warning says so; docker stack deploy
//     rejects every extends. extends.file is rejected, because it would read
//     a file that is neither capped nor checked: copy the base service into
//     the file, or pass the file with another -c and override the service.
//   - include is rejected for the same reason: pass each file with -c.
//   - logging becomes the task template's log driver, as with Docker; its
//     driver and options are checked as the managers check them (json-file,
//     local or none; max-size and max-file), so a bad one fails the deploy
//     before anything is created.
//   - Keys Docker accepts but shoal cannot honour yet (isolation,
//     credential_spec, oom_score_adj) and Compose-only keys are added to the
//     "Ignoring unsupported options" list rather than silently dropped;
//     Compose's resource shortcuts (cpus, mem_reservation, pids_limit, scale…)
//     are rejected with the deploy key to use instead, like mem_limit.
package stack
