"""Everything rendered from a saved results folder: tables now, figures and HTML later."""
