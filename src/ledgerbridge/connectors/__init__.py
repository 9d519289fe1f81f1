"""Clients for the two outside systems; each talks to exactly one of them."""
