"""Persistence: the only package that writes SQL. Nothing here commits on its own."""
