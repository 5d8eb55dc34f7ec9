"""Servers with known behaviour, for checking servingbench's own measurements."""
