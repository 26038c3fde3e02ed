"""Old import paths only: every module here is an alias of the module that now holds it."""
