package spawner

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// metalGPUs returns the names of the GPUs that support Metal in the output
// of `system_profiler SPDisplaysDataType -json`: each entry of
// SPDisplaysDataType is a GPU, and one that supports Metal names its Metal
// family (spdisplays_mtlgpufamilysupport on macOS 13 and later,
// spdisplays_metalfamily or spdisplays_metal before). It is pure, so it is
// tested on Linux with inputs written in that format (testdata/
// system_profiler_*.json, written from Apple's documented output, not
// recorded on a Mac).
func metalGPUs(out []byte) ([]string, error) {
	var doc struct {
		GPUs []map[string]any `json:"SPDisplaysDataType"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("read system_profiler output: %w", err)
	}
	var names []string
	for _, g := range doc.GPUs {
		for _, k := range []string{"spdisplays_mtlgpufamilysupport", "spdisplays_metalfamily", "spdisplays_metal"} {
			v, _ := g[k].(string)
			if v != "" && !strings.Contains(strings.ToLower(v), "unsupported") {
				name, _ := g["sppci_model"].(string)
				if name == "" {
					name, _ = g["_name"].(string)
				}
				names = append(names, name)
				break
			}
		}
	}
	return names, nil
}

// checkMetal asks system_profiler whether this Mac has a GPU that supports
// Metal. With a GOOS override on another OS and no SystemProfiler there is
// nothing to ask, and metal is taken as there.
func (p DeviceProbe) checkMetal() error {
	cmd := p.SystemProfiler
	if cmd == "" {
		if runtime.GOOS != "darwin" {
			return nil
		}
		cmd = "system_profiler"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd, "SPDisplaysDataType", "-json").Output()
	if err != nil {
		return fmt.Errorf("%w: metal: %s SPDisplaysDataType: %v", ErrDeviceUnavailable, cmd, err)
	}
	gpus, err := metalGPUs(out)
	if err != nil {
		return fmt.Errorf("%w: metal: %v", ErrDeviceUnavailable, err)
	}
	if len(gpus) == 0 {
		return fmt.Errorf("%w: metal: no GPU of this Mac supports Metal", ErrDeviceUnavailable)
	}
	return nil
}
