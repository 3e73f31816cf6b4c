package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// maxSecretFile bounds every credential, key and certificate file: the
// largest real one (a CA bundle) is a few hundred KiB.
const maxSecretFile = 1 << 20

// readSecretFile reads a credential, key or certificate file. It must be a
// regular file of at most maxSecretFile bytes: /dev/zero would grow the
// agent without bound, and a FIFO would block its start-up with no word.
// The file is opened without blocking and checked again once open, so a
// FIFO swapped in after the first look cannot hang it either.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := regularSmall(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := regularSmall(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("%s: larger than %d bytes (1 MiB); not a credential file", path, maxSecretFile)
	}
	return data, nil
}

// errNotRegular is wrapped by every refusal of a file that is not a regular file.
var errNotRegular = errors.New("not a regular file")

func regularSmall(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (%s); want a file holding the credential", path, errNotRegular, fileKind(fi.Mode()))
	}
	if fi.Size() > maxSecretFile {
		return fmt.Errorf("%s: larger than %d bytes (1 MiB); not a credential file", path, maxSecretFile)
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "mode " + m.String()
	}
}
