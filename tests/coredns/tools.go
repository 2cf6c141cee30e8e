//go:build tools

// Package tools names CoreDNS, the reference server kdns is compared with, so
// that go.mod and go.sum hold everything it is built from.
package tools

import (
	_ "github.com/coredns/coredns"
)
