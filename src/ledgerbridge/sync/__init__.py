"""The sync engine: refetch, map, echo check, three-way merge, apply."""
