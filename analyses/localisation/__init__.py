"""Do the knowledge maps find the object? See ``analyses/localisation/README.md``."""
