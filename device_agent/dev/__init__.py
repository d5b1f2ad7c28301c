"""Development doubles that speak the real protocols (pseudo-terminals, pipes, loopback)."""
