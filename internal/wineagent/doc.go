// Package wineagent holds the end-to-end test of hive-agent's Windows
// build: the Windows agent runs under Wine (scripts/wine-exec), a Linux
// NATS server runs in the test, and a Windows build of the test worker is
// spawned, listed, inspected, deleted and adopted. See docs/platforms.md.
package wineagent
