package spawner

import (
	"net"
	"strconv"
)

// portFree reports whether port can be bound on every interface and on
// loopback right now. A port that passes can still be taken before the
// worker binds it; the worker's own bind error then ends up in its log.
func portFree(port int) error {
	for _, host := range []string{"", "127.0.0.1"} {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}
