package proc

import (
	"net"
	"strconv"
	"testing"
)

func TestFreeAddr_IsBelowTheEphemeralRangeAndFree(t *testing.T) {
	lo, ok := ephemeralLow()
	if !ok {
		t.Skip("no /proc/sys/net/ipv4/ip_local_port_range on this system")
	}
	for range 20 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if host != "127.0.0.1" || port < minFixedPort || port >= lo {
			t.Fatalf("FreeAddr = %s, want 127.0.0.1 and a port in [%d, %d)", addr, minFixedPort, lo)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr = %s, not free: %v", addr, err)
		}
		ln.Close()
	}
}
