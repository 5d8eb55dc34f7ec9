"""Load engines: send prepared requests, record one RequestRecord per request."""
