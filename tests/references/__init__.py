"""Independent references of each family, shared by the tests: state dicts generated in the authors' key layout,
the authors' key / shape tables, and functional forwards written from the specs (never our classes)."""
