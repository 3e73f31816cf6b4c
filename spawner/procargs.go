package spawner

import (
	"bytes"
	"errors"
)

// parseProcargs2 splits the value of macOS's sysctl kern.procargs2 for one
// process: argc as a 32-bit integer in the machine's (little-endian) order,
// the executable's path, NUL padding, argc NUL-terminated arguments, then
// the NUL-terminated environment, ended by an empty string (what follows,
// the "apple" strings, is not environment). It is pure so that Linux tests
// can run it on inputs written in that format.
func parseProcargs2(b []byte) (args, env []string, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("procargs2: too short")
	}
	argc := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
	rest := b[4:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return nil, nil, errors.New("procargs2: no executable path")
	}
	rest = rest[i:]
	for len(rest) > 0 && rest[0] == 0 {
		rest = rest[1:]
	}
	next := func() (string, bool) {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return "", false
		}
		s := string(rest[:j])
		rest = rest[j+1:]
		return s, true
	}
	for range argc {
		s, ok := next()
		if !ok {
			return nil, nil, errors.New("procargs2: fewer arguments than argc")
		}
		args = append(args, s)
	}
	for {
		s, ok := next()
		if !ok || s == "" {
			return args, env, nil
		}
		env = append(env, s)
	}
}

// joinNUL joins strings the way /proc/<pid>/environ does.
func joinNUL(ss []string) []byte {
	var b []byte
	for _, s := range ss {
		b = append(append(b, s...), 0)
	}
	return b
}
