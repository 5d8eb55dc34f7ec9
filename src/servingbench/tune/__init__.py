"""`servingbench tune`: every framework at its best settings under a latency bound, and what a request costs."""
