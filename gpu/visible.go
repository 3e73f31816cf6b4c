package gpu

import (
	"fmt"
	"strconv"
	"strings"
)

// Visible narrows the host's GPUs to those a process with the given
// CUDA_VISIBLE_DEVICES sees, in the order CUDA numbers them (cuda:N is the
// Nth). set is false when the variable is unset: every GPU, by index.
// Entries are host indexes or GPU UUIDs (a unique prefix of one, as CUDA
// accepts); as in CUDA, the list ends at the first entry that names no GPU
// (-1, an empty entry, a MIG device, an unknown index), and a GPU named
// twice ends it too.
func Visible(gpus []GPU, value string, set bool) []GPU {
	if !set {
		return gpus
	}
	var out []GPU
	seen := map[int]bool{}
	for _, e := range strings.Split(value, ",") {
		g, ok := lookup(gpus, strings.TrimSpace(e))
		if !ok || seen[g.Index] {
			break
		}
		seen[g.Index] = true
		out = append(out, g)
	}
	return out
}

func lookup(gpus []GPU, e string) (GPU, bool) {
	if e == "" || strings.HasPrefix(e, "-") {
		return GPU{}, false
	}
	if i, err := strconv.Atoi(e); err == nil {
		for _, g := range gpus {
			if g.Index == i {
				return g, true
			}
		}
		return GPU{}, false
	}
	if !strings.HasPrefix(e, "GPU-") {
		return GPU{}, false
	}
	var found []GPU
	for _, g := range gpus {
		if strings.HasPrefix(g.UUID, e) {
			found = append(found, g)
		}
	}
	if len(found) != 1 {
		return GPU{}, false
	}
	return found[0], true
}

// Describe says which GPUs a CUDA_VISIBLE_DEVICES shows, for messages:
// "2 NVIDIA GPU(s) visible (CUDA_VISIBLE_DEVICES=0,1)".
func Describe(visible []GPU, value string, set bool) string {
	s := fmt.Sprintf("%d NVIDIA GPU(s) visible", len(visible))
	if set {
		s += fmt.Sprintf(" (the agent's CUDA_VISIBLE_DEVICES=%q)", value)
	}
	return s
}
