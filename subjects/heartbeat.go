package subjects

// EventHeartbeat is the agent event a running agent publishes every 10 s
// (PROTOCOL v1.2 "Fleets"): hive.<hive>.events.agent.heartbeat.
const EventHeartbeat = "heartbeat"

// Heartbeat is hive.<hive>.events.agent.heartbeat.
func Heartbeat(hive string) (string, error) { return AgentEvent(hive, EventHeartbeat) }

// AllHeartbeats matches every hive's heartbeat: hive.*.events.agent.heartbeat.
const AllHeartbeats = "hive.*.events.agent." + EventHeartbeat
