"""ktdiff's command line (thin: arguments in, exit code out)."""
