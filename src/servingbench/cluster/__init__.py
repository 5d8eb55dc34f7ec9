"""Running studies on clusters: batch scripts for a scheduler (SLURM), submitted from a login node."""
