"""Resource telemetry of the processes under test: servers, load generators, GPUs."""
