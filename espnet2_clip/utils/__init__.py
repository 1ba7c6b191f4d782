"""Small shared helpers: atomic writes, scp files."""
