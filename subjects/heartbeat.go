package subjects

// Heartbeat is hive.<hive>.events.agent.heartbeat, where a running agent
// says every 10 s that it is there (PROTOCOL v1.2 "Fleets").
func Heartbeat(hive string) (string, error) {
	return checked([]field{{"hive_id", hive}}, "hive", hive, "events", "agent", "heartbeat")
}

// AllHeartbeats matches every hive's heartbeat: hive.*.events.agent.heartbeat.
const AllHeartbeats = "hive.*.events.agent.heartbeat"
