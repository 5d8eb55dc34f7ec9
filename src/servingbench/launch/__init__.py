"""Start, watch and stop server and load-generator processes."""
