"""Putting the pipeline together: studies, cells and trials."""
